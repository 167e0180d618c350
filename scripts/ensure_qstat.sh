#!/bin/sh
# Install Debian's qstat for the gateway's interop test when it is missing.
# The package's binary is /usr/bin/quakestat (older packages named it qstat); the test
# (tests/gateway/test_gateway_qstat.py) uses whichever is on PATH. Needs root (or sudo).
set -eu

if command -v quakestat >/dev/null 2>&1 || command -v qstat >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_qstat: quakestat is missing and apt-get is not available; install qstat by hand" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "ensure_qstat: installing qstat needs root (run: apt-get install -y qstat)" >&2
        exit 1
    fi
fi
echo "ensure_qstat: installing Debian's qstat package" >&2
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends qstat
command -v quakestat >/dev/null 2>&1 || command -v qstat >/dev/null 2>&1
