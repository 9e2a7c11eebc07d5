#!/usr/bin/env bash
# Set up on a fresh machine, then run the main job on the embedded default:
# a local upstream, a config for it, apply, sync and status (no network needed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export PATH="$HOME/.local/bin:$PATH"
uv run git-mirror demo --dir "${1:-demo}"
