"""The ``fairdht`` command: parse, call into the node or a light client, render.

Each command group lives in its own module under ``fairdht.cli`` and exposes
``register(subparsers)``; the module adds its sub-parsers and sets ``func`` on them,
a callable taking the parsed ``argparse.Namespace`` and returning the exit code.
Exit codes (DESIGN.md): 0 success, 1 a failure the message explains, 2 bad usage.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from fairdht.errors import FairDHTError, KeyFileError, NetworkError, UsageError

__all__ = ["build_parser", "main"]

# One line per command module; each defines register(subparsers).
COMMAND_MODULES = [
    "fairdht.cli.keygen",
    "fairdht.cli.node_cmd",
    "fairdht.cli.status",
    "fairdht.cli.publish",
    "fairdht.cli.servers",
    "fairdht.cli.history",
    "fairdht.cli.checkpoint",
    "fairdht.cli.rollback",
    "fairdht.cli.trust_cmd",
    "fairdht.cli.codehash",
    "fairdht.cli.content",
    "fairdht.cli.referee",
    "fairdht.cli.match",
    "fairdht.cli.karma",
    "fairdht.cli.session_cmds",
    "fairdht.cli.gateway",
]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # One clear sentence on stderr and exit 2, as for any other bad input.
        sys.stderr.write(f"fairdht: {message}\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every command group registered."""
    parser = _Parser(prog="fairdht", description="fairdht: decentralized game networks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    except (UsageError, KeyFileError) as exc:
        sys.stderr.write(f"fairdht: {exc}\n")
        return 2
    except NetworkError as exc:
        sys.stderr.write(f"fairdht: {exc}\n")
        return 1
    except FairDHTError as exc:
        sys.stderr.write(f"fairdht: {exc}\n")
        return 1
    return code


if __name__ == "__main__":
    raise SystemExit(main())
