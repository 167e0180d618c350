#!/bin/sh
# Install Debian's OpenArena dedicated server for `make test-interop` when it is missing.
# About 420 MB of game data; never run by `make test` or CI. Needs root (or sudo).
set -eu

if command -v openarena-server >/dev/null 2>&1 || [ -x /usr/games/openarena-server ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_openarena: openarena-server is missing and apt-get is not available" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "ensure_openarena: installing needs root (run: apt-get install -y openarena-server)" >&2
        exit 1
    fi
fi
echo "ensure_openarena: installing Debian's openarena-server (about 420 MB)" >&2
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends openarena-server
