#!/bin/sh
# Debian's OpenArena dedicated server for `make test-interop` only: about 420 MB of game
# data, never installed by `make test` or CI.
exec sh "$(dirname "$0")/ensure_deb.sh" openarena-server openarena-server /usr/games/openarena-server
