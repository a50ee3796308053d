#!/usr/bin/env bash
# The test command: sets up the environment (idempotent) and runs the test suite.
#   bash tools/run_tests.sh [extra pytest arguments]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/tools/setup_env.sh"
bash "$ROOT/tools/setup_browser.sh"  # Chromium for the web demo's browser test (skips without)
VENV="${VITAMIN_DENSE_VENV:-${VITAMIN_DENSE_HOME:-$HOME/.cache/vitamin-dense}/venv}"
cd "$ROOT"
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@"
