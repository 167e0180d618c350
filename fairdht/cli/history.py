"""``fairdht history``: the local, hash-chained history of a node's server lists.

``fairdht history [--network NET]`` shows the log (newest first), ``history show
COMMIT`` one commit's diff, ``history blame --network NET`` what each author key added
and which of its entries were quarantined: how flooding keys are identified.
"""

from __future__ import annotations

import argparse
import datetime
from typing import Any

from fairdht.app.servers import open_history
from fairdht.cli.common import add_data_dir_option, add_json_option, data_dir_of, print_json
from fairdht.cli.servers import network_of
from fairdht.errors import UsageError
from fairdht.serverlist.history import Commit, History

__all__ = ["register", "run_blame", "run_log", "run_show"]


def _positive(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 100000:
        raise argparse.ArgumentTypeError("--limit must be a whole number from 1 to 100000")
    return int(text)


def register(subparsers: Any) -> None:
    """Add the ``history`` command group (log, ``show``, ``blame``)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "history", help="the server-list history of this node"
    )
    parser.add_argument("--network", metavar="NET", default=None, help="only this network")
    parser.add_argument("--limit", type=_positive, default=50, help="commits to show (50)")
    add_data_dir_option(parser)
    add_json_option(parser)
    parser.set_defaults(func=run_log)
    sub = parser.add_subparsers(dest="history_command", metavar="SUBCOMMAND")
    sub.required = False
    show = sub.add_parser("show", help="one commit and its entries")
    show.add_argument("commit", metavar="COMMIT", help="commit id (or a unique hex prefix)")
    add_data_dir_option(show)
    add_json_option(show)
    show.set_defaults(func=run_show)
    blame = sub.add_parser("blame", help="per author key: added, listed, quarantined")
    blame.add_argument("--network", metavar="NET", required=True)
    add_data_dir_option(blame)
    add_json_option(blame)
    blame.set_defaults(func=run_blame)


def _history(args: argparse.Namespace) -> History:
    """The data dir's history; a data dir that does not exist is refused, not created."""
    data_dir = data_dir_of(args)
    if not data_dir.is_dir():
        raise UsageError(f"data dir {data_dir} does not exist: no node has kept a history there")
    return open_history(data_dir)


def _when(t: int) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _line(c: Commit) -> str:
    n = c.counts()
    return (
        f"{c.id.hex()[:12]} {_when(c.time)} {c.network:<12} {c.kind:<10} v{c.version:<4} "
        f"root {c.root.hex()[:12]} +{n['added']} ~{n['updated']} -{n['removed']} "
        f"!{n['quarantined']}" + (f"  {c.note}" if c.note else "")
    )


def run_log(args: argparse.Namespace) -> int:
    """Print the log of one network, or of all."""
    network = network_of(args) if args.network else None
    commits = _history(args).log(network, limit=args.limit)
    if args.json:
        print_json({"commits": [c.to_json() for c in commits]})
        return 0
    if not commits:
        print("no history yet (run a node that follows this network)")
    for c in commits:
        print(_line(c))
    return 0


def run_show(args: argparse.Namespace) -> int:
    """Print one commit and its entries."""
    c = _history(args).show(args.commit)
    if args.json:
        print_json(c.to_json(with_entries=True))
        return 0
    print(f"commit {c.id.hex()}")
    print(f"parent {c.parent.hex() if c.parent else '-'}")
    print(f"time   {_when(c.time)} ({c.time})")
    print(f"kind   {c.kind} (control version {c.version}) on {c.network}")
    print(f"root   {c.root.hex()}")
    if c.note:
        print(f"note   {c.note}")
    for e in c.entries:
        print(f"  {e.op:<11} {e.address:<24} {e.name!r} author {e.author.hex()[:16]} seq {e.seq}")
    return 0


def run_blame(args: argparse.Namespace) -> int:
    """Print per-author counts, quarantined first."""
    network = network_of(args)
    rows = _history(args).blame(network)
    if args.json:
        print_json({"network": network, "authors": [r.to_json() for r in rows]})
        return 0
    if not rows:
        raise UsageError(f"no history for network {network} in this data dir")
    print(
        f"{'AUTHOR':<64} {'ADDED':>6} {'LISTED':>6} {'QUAR.NOW':>8} {'QUAR.EVER':>9} {'REMOVED':>7}"
    )
    for r in rows:
        print(
            f"{r.author.hex():<64} {r.added:>6} {r.listed:>6} {r.quarantined_now:>8} "
            f"{r.quarantined_ever:>9} {r.removed:>7}"
        )
    return 0
