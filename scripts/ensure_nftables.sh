#!/bin/sh
# Install Debian's nftables (the `nft` command) for the NAT testbed when it is missing.
# The NAT routers of tests/kit/netlab.py load their rules with `nft -f`. Needs root
# (or sudo) and apt-get; without nft the NAT tests skip with one line saying why.
set -eu

if command -v nft >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_nftables: nft is missing and apt-get is not available; install nftables by hand" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "ensure_nftables: installing nftables needs root (run: apt-get install -y nftables)" >&2
        exit 1
    fi
fi
echo "ensure_nftables: installing Debian's nftables package" >&2
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends nftables
command -v nft >/dev/null 2>&1
