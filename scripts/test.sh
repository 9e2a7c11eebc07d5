#!/usr/bin/env bash
# Set up on a fresh machine, then run ruff, the import contracts (the layers of
# docs/architecture.md), mypy (strict on src/; tests/ and bench/ checked too) and the whole
# test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export PATH="$HOME/.local/bin:$PATH"
uv run ruff check src tests bench scripts
uv run lint-imports --no-cache
uv run mypy
uv run pytest -q -p no:cacheprovider "$@"
