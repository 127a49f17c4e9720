#!/usr/bin/env bash
# Installs what the browser tests (tests/test_watch_browser.py) need: Debian's chromium
# at /usr/bin/chromium. The Python side, playwright, is pinned in the test extra and
# drives this browser with executable_path: `playwright install` is never run.
# Idempotent: does nothing when chromium is already there. Needs root (or sudo).
set -euo pipefail

if command -v /usr/bin/chromium >/dev/null 2>&1; then
    echo "chromium: $(/usr/bin/chromium --version 2>/dev/null || echo present)"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_browser.sh: no apt-get here; install Chromium so that /usr/bin/chromium exists" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends chromium
echo "chromium: $(/usr/bin/chromium --version)"
