#!/usr/bin/env python3
"""A game server reports its players' game events as karma, through its local node.

The Inexor seed's example: a player connects and plays fine (+1, ``connected_ok``);
the server kicks a player for team-killing (-3, ``teamkill_kick``); a plain kick is
``kicked``. The server's node signs each vote with its own key (the server's identity on
the network), so nothing here holds a key: it needs the node's API address and token.

Usage: python examples/game_events/report_events.py --api http://127.0.0.1:8470 \
           --token-file DATA_DIR/api-token --network demo < events.txt

Each input line is ``EVENT PLAYER_KEY [CONTEXT]``, as a server's log hook might print:
``connected PLAYER``, ``kicked PLAYER``, ``teamkill_kick PLAYER``. Events a server has no
karma action for are skipped and counted. Exit 0 when every known event was stored.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path

from fairdht.api.client import ApiClient
from fairdht.errors import FairDHTError

# Game events (what a server's log says) -> karma actions (fairdht.records.kinds.karma).
EVENTS = {
    "connected": "connected_ok",
    "kicked": "kicked",
    "teamkill_kick": "teamkill_kick",
    "cheating": "cheating",
    "portscan": "portscan",
}


def report(client: ApiClient, lines: Iterable[str], network: str) -> tuple[int, int, int]:
    """Vote for each event line; return (stored, skipped, failed)."""
    stored = skipped = failed = 0
    for line in lines:
        parts = line.split(maxsplit=2)
        if len(parts) < 2 or parts[0] not in EVENTS:
            skipped += 1
            continue
        event, player = parts[0], parts[1]
        context = parts[2].strip() if len(parts) == 3 else ""
        try:
            answer = client.vote(player, EVENTS[event], network=network, context=context)
        except FairDHTError as exc:
            print(f"{event} {player[:16]}…: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(f"{event} {player[:16]}… -> {answer['action']}, stored on {answer['accepted']}")
        stored += 1
    return stored, skipped, failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--api", required=True, help="the local node's API URL")
    parser.add_argument("--token-file", type=Path, required=True, help="DATA_DIR/api-token")
    parser.add_argument("--network", default="demo", help="the game's network (default demo)")
    args = parser.parse_args(argv)
    token = args.token_file.read_text(encoding="ascii").strip()
    stored, skipped, failed = report(ApiClient(args.api, token=token), sys.stdin, args.network)
    print(f"{stored} events reported, {skipped} skipped, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
