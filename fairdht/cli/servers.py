"""``fairdht servers``: list a network's game servers as a light client.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fairdht.cli.common import (
    add_bootstrap_option,
    add_data_dir_option,
    add_json_option,
    add_key_option,
    data_dir_of,
    key_path_of,
    print_json,
)
from fairdht.dht import connect
from fairdht.errors import BadBody, UsageError
from fairdht.localnet import LocalNetworks
from fairdht.node.karma_reader import reader_karma
from fairdht.node.prober import ProbeCache, Prober
from fairdht.records.envelope import check_network_name
from fairdht.serverlist.history import History
from fairdht.serverlist.listing import Entry
from fairdht.serverlist.probe import ProbeTable
from fairdht.serverlist.probe_scope import ProbeScope
from fairdht.serverlist.sync import SyncResult, sync_network
from fairdht.trust import DEMO_NETWORK, TrustStore

__all__ = [
    "DEFAULT_PROBE_BUDGET",
    "DEFAULT_PROBE_TIMEOUT",
    "HISTORY_FILE_NAME",
    "PROBE_FILE_NAME",
    "TRUST_FILE_NAME",
    "ProbedList",
    "add_network_option",
    "network_of",
    "open_history",
    "open_trust",
    "read_and_probe",
    "read_network",
    "register",
    "render_table",
    "run_servers",
]

HISTORY_FILE_NAME = "history.sqlite"
TRUST_FILE_NAME = "trust.sqlite"
PROBE_FILE_NAME = "probes.sqlite"
# A light client is short-lived: a few dozen probes and a second of waiting at most.
DEFAULT_PROBE_BUDGET = 32
DEFAULT_PROBE_TIMEOUT = 1.0


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
    bootstrap: list[tuple[str, int]],
    network: str,
    data_dir: Path,
    *,
    now: float,
    bind: str | None = None,
) -> SyncResult:
    """Join as a light client and read ``network`` under the data dir's trust policy."""
    history, trust = open_history(data_dir), open_trust(data_dir)
    async with connect(bootstrap, bind=bind) as node:
        return await sync_network(
            node.get,
            network,
            history=history,
            trust=trust,
            now=now,
            record_history=False,
            control_get=node.secure_get,
        )


@dataclass(frozen=True, slots=True)
class ProbedList:
    """A network's list and the probe result of each listed entry (by leaf)."""

    result: SyncResult
    reachable: dict[bytes, bool | None] = field(default_factory=dict)
    probes_sent: int = 0
    # (score, color) per author in the reader's own view; None without a key to read as.
    karma: dict[bytes, tuple[float, str]] | None = None

    def server_json(self, entry: Entry) -> dict[str, Any]:
        """``Entry.to_json`` plus ``reachable`` (true, false, null) and, with a reader key,
        ``karma`` ({"score", "color"} in the reader's own view)."""
        doc = entry.to_json()
        doc["reachable"] = self.reachable.get(entry.leaf)
        # Present when there is a reader key to score with (as the API's ?karma=1).
        if self.karma is not None:
            score, color = self.karma.get(entry.record.author, (0.0, "neutral"))
            doc["karma"] = {"score": round(score, 6), "color": color}
        return doc

    def ordered(self) -> list[Entry]:
        """Listed entries, best karma first (the listing's order among equals), as the
        Inexor seed lists a negative-karma server red and last."""
        entries = list(self.result.listing.listed)
        if self.karma is None:
            return entries
        karma = self.karma
        return sorted(entries, key=lambda e: -karma.get(e.record.author, (0.0, ""))[0])


async def read_and_probe(
    bootstrap: list[tuple[str, int]],
    network: str,
    data_dir: Path,
    *,
    now: float,
    probe: bool = True,
    budget: int = DEFAULT_PROBE_BUDGET,
    timeout: float = DEFAULT_PROBE_TIMEOUT,
    scope: ProbeScope | None = None,
    key_path: Path | None = None,
    bind: str | None = None,
) -> ProbedList:
    """Read ``network`` as a light client, probe its listed servers (bounded), and score
    their authors' karma as the reader at ``key_path`` (when that key file exists)."""
    history, trust = open_history(data_dir), open_trust(data_dir)
    async with connect(bootstrap, bind=bind) as node:
        result = await sync_network(
            node.get,
            network,
            history=history,
            trust=trust,
            now=now,
            record_history=False,
            control_get=node.secure_get,
        )
        karma = None
        if key_path is not None:
            karma = await reader_karma(
                lambda k: node.get(k, include_withdrawn=True, disjoint=True),
                data_dir=data_dir,
                key_path=key_path,
                network=network,
                subjects=sorted({e.record.author for e in result.listing.listed}),
                now=now,
            )
        if not probe or not result.listing.listed:
            return ProbedList(result, karma=karma)
        cache = ProbeCache(data_dir / PROBE_FILE_NAME)
        prober = Prober(table=ProbeTable(timeout=timeout))
        try:
            prober.table.load(cache.load())
            await prober.start(node.address[0])
            targets: dict[str, set[bytes]] = {}
            for entry in result.listing.listed:
                targets.setdefault(entry.body.address, set()).add(entry.record.author)
            reach = scope or ProbeScope.for_node(
                node.address[0], [h for h, _ in bootstrap], LocalNetworks.from_environ()
            )
            outcome = await prober.probe(targets, scope=reach, budget=budget, timeout=timeout)
            cache.save(prober.table.rows())
        finally:
            await prober.close()
            cache.close()
        reachable = {
            e.leaf: prober.reachable(e.body.address, e.record.author) for e in result.listing.listed
        }
        return ProbedList(result, reachable, outcome.sent, karma)


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
    result = probed.result
    if args.json:
        listing = result.listing
        print_json(
            {
                "servers": [probed.server_json(e) for e in probed.ordered()],
                "network": network,
                "state_root": listing.root.hex(),
                "checkpoint_version": result.policy.version,
                "closed": result.policy.closed(now),
                "quarantined": len(listing.quarantined),
                "capped": len(listing.capped),
            }
        )
    else:
        print(render_table(probed, color=sys.stdout.isatty()))
    return 0
