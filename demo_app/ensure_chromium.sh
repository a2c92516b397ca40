#!/bin/sh
# Install Debian's Chromium for the browser test (tests/demo/test_browser.py), once.
# Idempotent: does nothing when the browser is already there. Never downloads a browser
# build from elsewhere (no `playwright install`). Needs root (CI containers) or sudo.
set -eu

CHROMIUM="${CACHEMW_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_chromium: no apt-get here; install Chromium at $CHROMIUM yourself" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
    SUDO="sudo"
fi
echo "ensure_chromium: installing Debian's chromium package" >&2
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium
[ -x "$CHROMIUM" ]
