import { spawn } from "node:child_process";
import http from "node:http";
import type { AddressInfo } from "node:net";

/**
 * A real smart-HTTP git server on loopback: Node checks HTTP Basic auth (any user name, the password
 * must be the token) and hands every authorized request to `git http-backend` as CGI. Clone, fetch
 * and push go through it exactly as they would to a hosted git server.
 */

export interface GitHttpServer {
  /** http://127.0.0.1:PORT */
  baseUrl: string;
  /** Every request: method, path and the credentials it carried (decoded), for assertions. */
  requests: { method: string; path: string; user?: string; password?: string; status: number }[];
  /** Change the token (or tokens: one per user) the server accepts. */
  setToken(token: string | string[]): void;
  close(): Promise<void>;
}

export async function startGitHttpServer(options: { projectRoot: string; token: string | string[] }): Promise<GitHttpServer> {
  let tokens = [options.token].flat();
  const requests: GitHttpServer["requests"] = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const auth = /^Basic (.+)$/i.exec(req.headers.authorization ?? "")?.[1];
    const [user, ...rest] = auth ? Buffer.from(auth, "base64").toString("utf8").split(":") : [];
    const password = auth ? rest.join(":") : undefined;
    const record = { method: req.method ?? "", path: url.pathname, ...(user !== undefined ? { user } : {}), ...(password !== undefined ? { password } : {}), status: 0 };
    requests.push(record);
    if (password === undefined || !tokens.includes(password)) {
      record.status = 401;
      res.writeHead(401, { "www-authenticate": 'Basic realm="test git"', "content-type": "text/plain" });
      res.end("authentication required\n");
      return;
    }
    const cgi = spawn("git", ["http-backend"], {
      env: {
        PATH: process.env.PATH,
        GIT_PROJECT_ROOT: options.projectRoot,
        GIT_HTTP_EXPORT_ALL: "1",
        REQUEST_METHOD: req.method,
        PATH_INFO: url.pathname,
        QUERY_STRING: url.search.replace(/^\?/, ""),
        CONTENT_TYPE: req.headers["content-type"] ?? "",
        HTTP_CONTENT_ENCODING: req.headers["content-encoding"] ?? "",
        GIT_PROTOCOL: String(req.headers["git-protocol"] ?? ""),
        REMOTE_USER: user ?? "",
        REMOTE_ADDR: "127.0.0.1",
      },
      stdio: ["pipe", "pipe", "pipe"],
    });
    req.pipe(cgi.stdin);
    let head = Buffer.alloc(0);
    let headersDone = false;
    cgi.stdout.on("data", (chunk: Buffer) => {
      if (headersDone) {
        res.write(chunk);
        return;
      }
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) return;
      headersDone = true;
      let status = 200;
      const headers: Record<string, string> = {};
      for (const line of head.subarray(0, end).toString("utf8").split("\r\n")) {
        const i = line.indexOf(":");
        if (i < 0) continue;
        const name = line.slice(0, i).trim();
        const value = line.slice(i + 1).trim();
        if (name.toLowerCase() === "status") status = Number.parseInt(value, 10);
        else headers[name] = value;
      }
      record.status = status;
      res.writeHead(status, headers);
      res.write(head.subarray(end + 4));
    });
    cgi.stdout.on("end", () => res.end());
    cgi.on("error", () => {
      res.writeHead(500).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  return {
    baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    setToken(next) {
      tokens = [next].flat();
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
