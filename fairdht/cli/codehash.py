"""``fairdht codehash PATH``: print the code hash of a game bundle (docs/referee.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from fairdht.cli.common import add_json_option, print_json
from fairdht.referee.codehash import bundle_files, code_hash

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``codehash`` command."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "codehash", help="print the BLAKE2b-256 code hash of a bundle (file or directory)"
    )
    parser.add_argument("path", metavar="PATH", type=Path, help="bundle file or directory")
    add_json_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Hash the bundle at ``args.path`` and print it."""
    digest = code_hash(args.path).hex()
    if args.json:
        files = bundle_files(args.path)
        print_json(
            {
                "code_hash": digest,
                "path": str(args.path),
                "files": len(files),
                "size": sum(f.size for f in files),
            }
        )
    else:
        sys.stdout.write(f"{digest}\n")
    return 0
