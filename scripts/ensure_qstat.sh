#!/bin/sh
# Debian's qstat for the gateway tests: its binary is /usr/bin/quakestat (older packages
# named it qstat); tests/gateway/test_gateway_qstat.py uses whichever is on PATH.
exec sh "$(dirname "$0")/ensure_deb.sh" qstat quakestat qstat
