#!/usr/bin/env bash
# Installs the ACP agents the end-to-end tests drive into a cache prefix OUTSIDE the repository
# (they are hundreds of MB and not dependencies of coding-mcp). Idempotent: an agent whose pinned
# version is already there is not installed again. OpenCode needs nothing here: `opencode acp` is
# the opencode-ai dependency.
#
#   scripts/install-agents.sh [claude] [codex] [gemini]     (no argument: all three)
#   ACP_AGENTS_CACHE=/some/dir scripts/install-agents.sh claude
#
# Codex (codex-acp) is a native binary: npm installs it from the platform's optional package
# (@zed-industries/codex-acp-linux-x64 here) next to a small launcher.
# The tests find the agents in the same prefix (test/support/agents.mjs).
set -euo pipefail

prefix="${ACP_AGENTS_CACHE:-$HOME/.cache/coding-mcp-agents}"
declare -A packages=(
  [claude]="@agentclientprotocol/claude-agent-acp@0.101.0"
  [codex]="@zed-industries/codex-acp@0.16.0"
  [gemini]="@google/gemini-cli@0.61.0"
)

wanted=("$@")
[ ${#wanted[@]} -eq 0 ] && wanted=(claude codex gemini)
mkdir -p "$prefix"
for agent in "${wanted[@]}"; do
  spec="${packages[$agent]:-}"
  if [ -z "$spec" ]; then
    echo "install-agents: unknown agent \"$agent\" (known: ${!packages[*]})" >&2
    exit 2
  fi
  name="${spec%@*}"
  version="${spec##*@}"
  installed="$(node -p "try { require('$prefix/node_modules/$name/package.json').version } catch { '' }" 2>/dev/null || true)"
  if [ "$installed" = "$version" ]; then
    echo "install-agents: $spec already in $prefix"
    continue
  fi
  echo "install-agents: installing $spec into $prefix"
  # Saved into the prefix's own package.json, so installing one agent does not prune another.
  npm install --prefix "$prefix" --no-audit --no-fund --save-exact --loglevel=error "$spec" >&2
done
