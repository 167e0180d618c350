#!/bin/sh
# Install Debian's chromium for the dashboard's browser test when it is missing.
# Playwright drives this binary (executable_path=/usr/bin/chromium); its own browser
# download (`playwright install`) is never used. Needs root (or sudo) and apt-get.
set -eu

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_chromium: $CHROMIUM is missing and apt-get is not available; install Chromium by hand" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "ensure_chromium: installing chromium needs root (run: apt-get install -y chromium)" >&2
        exit 1
    fi
fi
echo "ensure_chromium: installing Debian's chromium package" >&2
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends chromium
test -x "$CHROMIUM"
