import { SessionRecord, WorkspaceRecord } from "./model.js";
import type { Collection, JsonStore } from "./store.js";

/** coding-mcp's records on disk: sessions and workspaces, one file each under the state directory. */
export interface Records {
  sessions: Collection<SessionRecord>;
  workspaces: Collection<WorkspaceRecord>;
  /** Resolves once every write queued so far is on disk. */
  flush(): Promise<void>;
}

export async function openRecords(store: JsonStore): Promise<Records> {
  const [sessions, workspaces] = await Promise.all([store.collection("sessions", SessionRecord), store.collection("workspaces", WorkspaceRecord)]);
  return { sessions, workspaces, flush: () => store.flush() };
}
