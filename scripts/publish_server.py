#!/usr/bin/env python3
"""Announce a game server on a fairdht network: a thin wrapper over ``fairdht publish``.

Usage: python scripts/publish_server.py --key PATH --bootstrap HOST:PORT --address IP:PORT
       --name NAME --network NET [--mode M] [--map M] [--players N] [--max-players N]
       [--game-version V] [--tags a,b] [--once] [--no-probe-answer]

Without --once it also answers reachability probes on the announced UDP port
(docs/serverlist.md section 1.11).
"""

from __future__ import annotations

from fairdht.cli.publish import main

if __name__ == "__main__":
    raise SystemExit(main())
