"""``fairdht servers``: list a network's game servers as a light client (the flow is
``fairdht.app.servers.read_and_probe``; this module parses and renders).

Reads every shard of the network, verifies every record, applies the trust policy of
the data dir (accepted checkpoints and rollbacks, distrusted keys), merges, caps and
sorts, then probes the listed addresses (docs/serverlist.md §1.11: at most
``--probe-budget`` probes, ``--probe-timeout`` seconds, each address at most once a
minute across runs thanks to ``probes.sqlite`` in the data dir; ``--no-probe`` skips
it) and prints a table or ``{"servers": [...]}`` with ``reachable`` per server.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from fairdht.app.servers import (
    DEFAULT_PROBE_BUDGET,
    DEFAULT_PROBE_TIMEOUT,
    ProbedList,
    read_and_probe,
)
from fairdht.cli.common import (
    add_bootstrap_option,
    add_data_dir_option,
    add_json_option,
    add_key_option,
    data_dir_of,
    key_path_of,
    print_json,
)
from fairdht.errors import BadBody, UsageError
from fairdht.records.envelope import check_network_name
from fairdht.serverlist.sync import SyncResult
from fairdht.trust import DEMO_NETWORK

__all__ = [
    "add_network_option",
    "network_of",
    "register",
    "render_table",
    "run_servers",
]


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


def _budget(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value <= 1024:
        raise argparse.ArgumentTypeError("the probe budget must be between 0 and 1024")
    return value


def _timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 10:
        raise argparse.ArgumentTypeError("the probe timeout must be between 0 and 10 seconds")
    return value


def register(subparsers: Any) -> None:
    """Add the ``servers`` command."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "servers", help="list a network's game servers (light client)"
    )
    add_bootstrap_option(parser, required=True)
    add_network_option(parser)
    add_data_dir_option(parser)
    add_key_option(parser)
    parser.add_argument("--no-probe", action="store_true", help="do not probe the listed addresses")
    parser.add_argument(
        "--probe-budget",
        type=_budget,
        default=DEFAULT_PROBE_BUDGET,
        metavar="N",
        help=f"probe at most N addresses (default {DEFAULT_PROBE_BUDGET})",
    )
    parser.add_argument(
        "--probe-timeout",
        type=_timeout,
        default=DEFAULT_PROBE_TIMEOUT,
        metavar="S",
        help=f"wait at most S seconds for probe replies (default {DEFAULT_PROBE_TIMEOUT:g})",
    )
    add_json_option(parser)
    parser.set_defaults(func=run_servers)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


_UP = {True: "yes", False: "NO", None: "?"}


_ANSI = {"red": "\x1b[31m", "green": "\x1b[32m"}


def _karma_cell(karma: dict[bytes, tuple[float, str]] | None, author: bytes, *, color: bool) -> str:
    if karma is None or author not in karma:
        return "-"
    score, name = karma[author]
    text = f"{score:+.3f} {name}"
    if color and name in _ANSI:
        return f"{_ANSI[name]}{text}\x1b[0m"
    return text


def render_table(probed: ProbedList | SyncResult, *, color: bool = False) -> str:
    """The human table: one line per server, then a summary line.

    OK is the checkpoint mark; UP is the probe result: ``yes`` (the author answered a
    probe at that address), ``NO`` (probed, not proven), ``?`` (not probed).
    """
    if isinstance(probed, SyncResult):
        probed = ProbedList(probed)
    result = probed.result
    listing = result.listing
    lines = [
        f"{'ADDRESS':<24} {'NAME':<28} {'MODE':<12} {'MAP':<14} {'PLAYERS':>9} {'VERSION':<10} "
        "OK UP  KARMA"
    ]
    for e in probed.ordered():
        b = e.body
        players = f"{b.players}/{b.max_players}" if b.max_players else str(b.players)
        lines.append(
            f"{_cut(b.address, 24):<24} {_cut(b.name, 28):<28} {_cut(b.mode, 12):<12} "
            f"{_cut(b.map, 14):<14} {players:>9} {_cut(b.game_version, 10):<10} "
            f"{'✓' if e.verified else '-':<2} {_UP[probed.reachable.get(e.leaf)]:<4} "
            f"{_karma_cell(probed.karma, e.record.author, color=color)}"
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
    probed = asyncio.run(
        read_and_probe(
            list(args.bootstrap),
            network,
            data_dir_of(args),
            now=now,
            probe=not args.no_probe,
            budget=args.probe_budget,
            timeout=args.probe_timeout,
            key_path=key_path_of(args),
            bind=args.bind,
        )
    )
    if args.json:
        print_json(probed.document(network, now))
    else:
        print(render_table(probed, color=sys.stdout.isatty()))
    return 0
