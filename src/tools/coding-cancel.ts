import { z } from "zod";
import { defineTool } from "./define.js";
import { SessionState } from "../model.js";
import { sessionId } from "./schemas.js";

export const codingCancelTool = defineTool({
  name: "coding_cancel",
  title: "Cancel a running task",
  description:
    "Stop the task a session is running (a background task, or one whose client cannot send a cancellation): the agent is " +
    "aborted in its backend and the session stays usable. Answers whether there was a task to cancel.",
  inputSchema: { session_id: sessionId },
  outputSchema: {
    cancelled: z.boolean(),
    state: SessionState,
  },
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  async handle(args, ctx) {
    const result = await ctx.sessions.cancel(args.session_id);
    return {
      structured: result,
      text: result.cancelled ? `Cancelled the running task; the session is ${result.state}.` : `No task was running; the session is ${result.state}.`,
    };
  },
});
