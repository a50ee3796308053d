#!/usr/bin/env bash
# The test command: sets up the environment (idempotent) and runs the test suite.
#   bash tools/run_tests.sh [--all] [extra pytest arguments]   (--all: the `slow` tests too)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/tools/setup_env.sh"
bash "$ROOT/tools/setup_browser.sh"  # Chromium for the web demo's browser test (skips without)
VENV="${VITAMIN_DENSE_VENV:-${VITAMIN_DENSE_HOME:-$HOME/.cache/vitamin-dense}/venv}"
cd "$ROOT"
# Tests marked `slow` (learning runs, full-size ViTamin-L builds, end-to-end command and
# install runs) are left out unless asked for: `--all` runs everything, and any `-m`
# expression of the caller replaces the default.
MARK=(-m "not slow")
ARGS=()
for arg in "$@"; do
  case "$arg" in
    --all) MARK=() ;;
    -m|-m*) MARK=(); ARGS+=("$arg") ;;
    *) ARGS+=("$arg") ;;
  esac
done
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider ${MARK[@]+"${MARK[@]}"} ${ARGS[@]+"${ARGS[@]}"}
