"""``fairdht history``: the server-list history of a node (log, show, diff, blame).

``fairdht history [--network NET]`` shows the log (newest first), ``history show
COMMIT`` one commit, ``history diff A B --network NET`` the changes between any two
commits or checkpoint versions (``v3``), ``history blame --network NET`` what each
author key did. Each only parses, calls ``fairdht.app.history`` and renders.
"""

from __future__ import annotations

import argparse
import datetime
from typing import Any

from fairdht.app.history import history_blame, history_diff, history_log, history_show
from fairdht.app.servers import open_history
from fairdht.cli.common import add_data_dir_option, add_json_option, data_dir_of, print_json
from fairdht.cli.servers import network_of
from fairdht.errors import UsageError
from fairdht.serverlist.history import History

__all__ = ["register", "run_blame", "run_diff", "run_log", "run_show"]


def _positive(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 100000:
        raise argparse.ArgumentTypeError("--limit must be a whole number from 1 to 100000")
    return int(text)


def register(subparsers: Any) -> None:
    """Add the ``history`` command group (log, ``show``, ``diff``, ``blame``)."""
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
    show.add_argument("commit", metavar="COMMIT", help="commit id (unique hex prefix) or vN")
    show.add_argument("--network", metavar="NET", default=None, help="network of a vN")
    add_data_dir_option(show)
    add_json_option(show)
    show.set_defaults(func=run_show)
    diff = sub.add_parser("diff", help="servers added, removed and changed between two points")
    diff.add_argument("old", metavar="A", help="commit id (unique hex prefix) or vN")
    diff.add_argument("new", metavar="B", help="commit id (unique hex prefix) or vN")
    diff.add_argument("--network", metavar="NET", required=True)
    add_data_dir_option(diff)
    add_json_option(diff)
    diff.set_defaults(func=run_diff)
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


def _counts(n: dict[str, int]) -> str:
    return (
        f"+{n.get('added', 0)} ~{n.get('changed', 0)} -{n.get('removed', 0)} "
        f"!{n.get('quarantined', 0)}"
    )


def _line(c: dict[str, Any]) -> str:
    where = "local" if c["local"] else "spine"
    withdrawn = c["counts"].get("withdrawn", 0)
    return (
        f"{c['id'][:12]} {_when(c['time'])} {c['network']:<12} {c['kind']:<10} {where:<5} "
        f"v{c['version']:<4} root {c['root'][:12]} {_counts(c['counts'])}"
        + (f" x{withdrawn}" if withdrawn else "")
        + (f"  {c['note']}" if c["note"] else "")
    )


def run_log(args: argparse.Namespace) -> int:
    """Print the log of one network, or of all."""
    network = network_of(args) if args.network else None
    doc = history_log(_history(args), network, limit=args.limit)
    if args.json:
        print_json({"commits": doc["commits"]})
        return 0
    if not doc["commits"]:
        print("no history yet (run a node that follows this network)")
    for c in doc["commits"]:
        print(_line(c))
    return 0


def _entry_line(e: dict[str, Any]) -> str:
    address = e["address"] or "(slot withdrawn; a tombstone has no address)"
    return (
        f"  {e['op']:<11} {address:<24} {e['name']!r} author {e['author'][:16]} "
        f"subkey {e['subkey'][:8]} at {e['at']}"
    )


def run_show(args: argparse.Namespace) -> int:
    """Print one commit and its entries."""
    network = network_of(args) if args.network else None
    c = history_show(_history(args), args.commit, network)
    if args.json:
        print_json(c)
        return 0
    print(f"commit {c['id']}  ({'local to this node' if c['local'] else 'shared spine'})")
    print(f"parent {c['parent'] or '-'}")
    print(f"time   {_when(c['time'])} ({c['time']})")
    print(f"kind   {c['kind']} (control version {c['version']}) on {c['network']}")
    print(f"root   {c['root']}")
    if c["signers"]:
        print(f"signed {', '.join(s[:16] for s in c['signers'])}")
    if c["folded"]:
        print(f"folded {c['folded']} local commits (net diff below)")
    if c["note"]:
        print(f"note   {c['note']}")
    for e in c["entries"]:
        print(_entry_line(e))
    return 0


def run_diff(args: argparse.Namespace) -> int:
    """Print the servers added, removed, changed and quarantined from A to B, with authors."""
    doc = history_diff(_history(args), network_of(args), args.old, args.new)
    if args.json:
        print_json(doc)
        return 0
    a, b = doc["from"], doc["to"]
    print(
        f"from {a['id'][:12]} ({a['kind']} v{a['version']}) to {b['id'][:12]} ({b['kind']} v{b['version']})"
    )
    print(f"     {_counts(doc['counts'])}")
    for e in doc["changes"]:
        line = _entry_line(e)
        if e["op"] == "changed":
            before = e["before"]
            line += f"  (was {before['address']} {before['name']!r} {before['game_version']})"
        print(line)
    for c in doc["controls"]:
        print(f"  {c['kind']} v{c['version']} signed by {', '.join(s[:16] for s in c['signers'])}")
    return 0


def run_blame(args: argparse.Namespace) -> int:
    """Print per-author counts, quarantined first."""
    network = network_of(args)
    doc = history_blame(_history(args), network)
    if args.json:
        print_json(doc)
        return 0
    if not doc["authors"]:
        raise UsageError(f"no history for network {network} in this data dir")
    print(
        f"{'AUTHOR':<64} {'ADDED':>6} {'CHANGED':>7} {'LISTED':>6} {'QUAR.NOW':>8} "
        f"{'QUAR.EVER':>9} {'REMOVED':>7} {'WITHDRAWN':>9}"
    )
    for r in doc["authors"]:
        print(
            f"{r['author']:<64} {r['added']:>6} {r['changed']:>7} {r['listed']:>6} "
            f"{r['quarantined_now']:>8} {r['quarantined_ever']:>9} {r['removed']:>7} "
            f"{r['withdrawn']:>9}"
        )
    return 0
