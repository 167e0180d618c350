"""``fairdht keygen --out PATH``: create a key file and print its public key and node id."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from fairdht.cli.common import add_json_option, print_json
from fairdht.identity import SigningKey, write_key

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``keygen`` command."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "keygen", help="create a new Ed25519 key file (mode 0600)"
    )
    parser.add_argument("--out", metavar="PATH", type=Path, required=True, help="key file to write")
    add_json_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write a new key to ``args.out`` (never overwriting) and print who it is."""
    key = SigningKey.generate()
    write_key(args.out, key)
    public_key = key.public_key.hex()
    node_id = key.node_id.hex()
    if args.json:
        print_json({"public_key": public_key, "node_id": node_id, "path": str(args.out)})
    else:
        sys.stdout.write(f"public_key {public_key}\nnode_id {node_id}\n")
    return 0
