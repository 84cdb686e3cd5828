import { codeTool } from "./code.js";
import { codingCancelTool } from "./coding-cancel.js";
import { codingCloseTool } from "./coding-close.js";
import { codingCommitTool } from "./coding-commit.js";
import { codingDiffTool } from "./coding-diff.js";
import { codingOpenTool } from "./coding-open.js";
import { codingPushTool } from "./coding-push.js";
import { codingRespondTool } from "./coding-respond.js";
import { codingStatusTool } from "./coding-status.js";

/** Every tool coding-mcp serves, in the order clients list them. */
export const allTools = [codingOpenTool, codeTool, codingCommitTool, codingPushTool, codingCloseTool, codingStatusTool, codingCancelTool, codingRespondTool, codingDiffTool];
