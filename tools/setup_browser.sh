#!/usr/bin/env bash
# Idempotent: a headless Chromium for the web demo's browser test (tests/test_webapp.py).
#
# Playwright (a Python requirement of the tests) drives the system's Chromium:
# Playwright's own browser download needs a CDN that is not reachable offline,
# Debian's `chromium` package comes from the package mirror like everything
# else. Does nothing when a Chromium is already there; without apt-get or root
# it says so and exits 0, and the browser test skips with the reason.
#
# Usage:  bash tools/setup_browser.sh
set -uo pipefail

log() { echo "[setup] $*" >&2; }

for exe in "${VITAMIN_DENSE_CHROMIUM:-}" chromium chromium-browser google-chrome; do
  if [ -n "$exe" ] && command -v "$exe" >/dev/null 2>&1; then
    exit 0
  fi
done
if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
  log "no Chromium and no apt-get as root here: the browser test will skip"
  exit 0
fi
HOME_DIR="${VITAMIN_DENSE_HOME:-$HOME/.cache/vitamin-dense}"
mkdir -p "$HOME_DIR"
apt_log="$HOME_DIR/setup-browser.log"
log "installing Debian's chromium for the browser test (once; log: $apt_log)"
if { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
       chromium; } > "$apt_log" 2>&1; then
  log "chromium installed"
else
  log "chromium could not be installed (see $apt_log): the browser test will skip"
fi
exit 0
