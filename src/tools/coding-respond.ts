import { z } from "zod";
import { defineTool } from "./define.js";
import { sessionId } from "./schemas.js";

export const codingRespondTool = defineTool({
  name: "coding_respond",
  title: "Answer the agent's permission request or question",
  description:
    "Answer a request of a session's running task that waits for a person: coding_status lists them under task.pending_requests " +
    "(request_id, kind, what is asked). A permission takes decision allow (this once), allow_session (for the rest of the session) or reject; " +
    "a question takes answers, one per question in order (an option's label, your own words where allowed, or a list of labels where several may be chosen), " +
    "or decision reject to dismiss it. message is passed to the agent. Each request is answered once; an unanswered one is rejected after limits.approval_timeout_sec.",
  inputSchema: {
    session_id: sessionId,
    request_id: z.string().min(1, { error: "request_id is required: take it from coding_status (task.pending_requests)" }).describe("The request_id from coding_status"),
    decision: z.enum(["allow", "allow_session", "reject"]).optional().describe("For a permission: allow once, allow for the rest of the session, or reject; reject also dismisses a question"),
    answers: z
      .array(z.union([z.string().max(10_000), z.array(z.string().max(10_000)).max(50)]))
      .max(20)
      .optional()
      .describe("For a question: one entry per question, in order"),
    message: z.string().max(10_000).optional().describe("Passed to the agent with the answer (e.g. why you rejected it, or what to do instead)"),
  },
  outputSchema: {
    answered: z.boolean(),
    request_id: z.string(),
    kind: z.enum(["permission", "question"]),
  },
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
  async handle(args, ctx) {
    const { session_id, ...input } = args;
    const result = await ctx.sessions.respond(session_id, input);
    return { structured: result, text: `Answered ${result.kind} ${result.request_id}; the agent goes on.` };
  },
});
