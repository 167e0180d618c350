#!/bin/sh
# Install one small Debian package when none of its commands is found:
#   sh scripts/ensure_deb.sh PACKAGE COMMAND_OR_PATH [COMMAND_OR_PATH ...]
# The Makefile's only way to bring system packages to a fresh machine (chromium, qstat,
# nftables; openarena-server for make test-interop). Needs root (or sudo) and apt-get.
set -eu

package=$1
shift
found() {
    for want in "$@"; do
        if [ -x "$want" ] || command -v "$want" >/dev/null 2>&1; then
            return 0
        fi
    done
    return 1
}

if found "$@"; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_deb: $1 is missing and apt-get is not available; install $package by hand" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "ensure_deb: installing $package needs root (run: apt-get install -y $package)" >&2
        exit 1
    fi
fi
echo "ensure_deb: installing Debian's $package package" >&2
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "$package"
found "$@"
