"""``fairdht status --api URL``: ask a running node's HTTP API who it is and what it holds."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from fairdht.api.client import ApiClient
from fairdht.cli.common import add_json_option, print_json

__all__ = ["register", "run"]

FIELDS = ("node_id", "listen", "peers", "records", "uptime_s", "reachable")
# Printed after the fields above (and in --json): why, the address peers see, and the
# rendezvous nodes a node that is not public registered at (docs/nat.md).
DETAILS = ("reachable_reason", "observed", "rendezvous")


def register(subparsers: Any) -> None:
    """Add the ``status`` command."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "status", help="show a running node's status through its HTTP API"
    )
    parser.add_argument(
        "--api",
        metavar="URL",
        required=True,
        help="the node's API, e.g. http://127.0.0.1:8470 (see node.json in its data dir)",
    )
    parser.add_argument(
        "--timeout", metavar="S", type=float, default=5.0, help="seconds to wait (default 5)"
    )
    add_json_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the node's status; NetworkError (exit 1) if it does not answer."""
    status = ApiClient(args.api, timeout=args.timeout).status()
    if args.json:
        names = (*FIELDS, *DETAILS, "public_key", "version")
        print_json({name: status.get(name) for name in names})
    else:
        lines = (f"{name} {_text(status.get(name))}\n" for name in (*FIELDS, *DETAILS))
        sys.stdout.write("".join(lines))
    return 0


def _text(value: Any) -> str:
    """A field as one line of text: lists comma-separated ("-" when empty)."""
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "-"
    return str(value)
