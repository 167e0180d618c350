#!/bin/sh
# Debian's nftables (the nft command) for the NAT testbed: the routers of
# tests/kit/netlab.py load their rules with `nft -f`; without it the NAT tests skip.
exec sh "$(dirname "$0")/ensure_deb.sh" nftables nft
