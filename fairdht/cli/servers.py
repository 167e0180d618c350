"""``fairdht servers``: list a network's game servers as a light client.

Reads every shard of the network, verifies every record, applies the trust policy of
the data dir (accepted checkpoints and rollbacks, distrusted keys), merges, caps and
sorts, then prints a table or ``{"servers": [...]}`` (docs/serverlist.md).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

from fairdht.cli.common import (
    add_bootstrap_option,
    add_data_dir_option,
    add_json_option,
    data_dir_of,
    print_json,
)
from fairdht.dht import connect
from fairdht.errors import BadBody, UsageError
from fairdht.records.envelope import check_network_name
from fairdht.serverlist.history import History
from fairdht.serverlist.sync import SyncResult, sync_network
from fairdht.trust import DEMO_NETWORK, TrustStore

__all__ = [
    "HISTORY_FILE_NAME",
    "TRUST_FILE_NAME",
    "add_network_option",
    "network_of",
    "open_history",
    "open_trust",
    "read_network",
    "register",
    "render_table",
    "run_servers",
]

HISTORY_FILE_NAME = "history.sqlite"
TRUST_FILE_NAME = "trust.sqlite"


def add_network_option(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    """Add ``--network NET`` (default: the demo network)."""
    parser.add_argument(
        "--network",
        metavar="NET",
        required=required,
        default=None if required else DEMO_NETWORK,
        help="game/community network name" + ("" if required else f" (default {DEMO_NETWORK})"),
    )


def network_of(args: argparse.Namespace) -> str:
    """The checked ``--network``; UsageError with one sentence otherwise."""
    try:
        return check_network_name(args.network)
    except BadBody as exc:
        raise UsageError(str(exc)) from None


def open_history(data_dir: Path) -> History:
    """The history (and accepted policy) file of a data dir."""
    return History(data_dir / HISTORY_FILE_NAME)


def open_trust(data_dir: Path) -> TrustStore:
    """The trust store of a data dir."""
    return TrustStore(data_dir / TRUST_FILE_NAME)


async def read_network(
    bootstrap: list[tuple[str, int]], network: str, data_dir: Path, *, now: float
) -> SyncResult:
    """Join as a light client and read ``network`` under the data dir's trust policy."""
    history, trust = open_history(data_dir), open_trust(data_dir)
    async with connect(bootstrap) as node:
        return await sync_network(
            node.get, network, history=history, trust=trust, now=now, record_history=False
        )


def register(subparsers: Any) -> None:
    """Add the ``servers`` command."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "servers", help="list a network's game servers (light client)"
    )
    add_bootstrap_option(parser, required=True)
    add_network_option(parser)
    add_data_dir_option(parser)
    add_json_option(parser)
    parser.set_defaults(func=run_servers)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def render_table(result: SyncResult) -> str:
    """The human table: one line per server, then a summary line."""
    listing = result.listing
    lines = [
        f"{'ADDRESS':<24} {'NAME':<28} {'MODE':<12} {'MAP':<14} {'PLAYERS':>9} {'VERSION':<10} OK"
    ]
    for e in listing.listed:
        b = e.body
        players = f"{b.players}/{b.max_players}" if b.max_players else str(b.players)
        lines.append(
            f"{_cut(b.address, 24):<24} {_cut(b.name, 28):<28} {_cut(b.mode, 12):<12} "
            f"{_cut(b.map, 14):<14} {players:>9} {_cut(b.game_version, 10):<10} "
            f"{'✓' if e.verified else '-'}"
        )
    policy = result.policy
    state = f"checkpoint v{policy.version}" if policy.version else "no checkpoint"
    if policy.closed(time.time()):
        state += ", closed by a rollback"
    hidden = len(listing.quarantined) + len(listing.capped) + len(listing.distrusted)
    lines.append(
        f"{len(listing.listed)} servers on {listing.network} ({state}; state root "
        f"{listing.root.hex()[:16]}…; {hidden} held back)"
    )
    return "\n".join(lines)


def run_servers(args: argparse.Namespace) -> int:
    """List servers; exit 1 (NoPeersError) when no peer answered."""
    network = network_of(args)
    now = time.time()
    result = asyncio.run(read_network(list(args.bootstrap), network, data_dir_of(args), now=now))
    if args.json:
        listing = result.listing
        print_json(
            {
                "servers": [e.to_json() for e in listing.listed],
                "network": network,
                "state_root": listing.root.hex(),
                "checkpoint_version": result.policy.version,
                "closed": result.policy.closed(now),
                "quarantined": len(listing.quarantined),
                "capped": len(listing.capped),
            }
        )
    else:
        print(render_table(result))
    return 0
