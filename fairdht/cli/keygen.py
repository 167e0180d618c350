"""``fairdht keygen --out PATH [--puzzle-bits D]``: create a key file and print its public
key and node id (with D, one whose id solves S/Kademlia's static puzzle)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from fairdht.cli.common import add_json_option, print_json
from fairdht.errors import UsageError
from fairdht.identity import SigningKey, puzzle_bits, write_key

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``keygen`` command."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "keygen", help="create a new Ed25519 key file (mode 0600)"
    )
    parser.add_argument("--out", metavar="PATH", type=Path, required=True, help="key file to write")
    parser.add_argument(
        "--puzzle-bits",
        metavar="D",
        type=int,
        default=0,
        help="search for a key whose id has D leading zero bits of BLAKE2b-256 (the "
        "network's puzzle difficulty; 14 takes about a second, each bit doubles it)",
    )
    add_json_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write a new key to ``args.out`` (never overwriting) and print who it is."""
    bits = args.puzzle_bits
    if not 0 <= bits <= 32:
        raise UsageError("--puzzle-bits must be 0..32")
    if bits:
        # Imported here so a plain `fairdht keygen` starts without the DHT stack.
        from fairdht.dht.admission import generate_key

        key = generate_key(bits)
    else:
        key = SigningKey.generate()
    write_key(args.out, key)
    public_key = key.public_key.hex()
    node_id = key.node_id.hex()
    document: dict[str, Any] = {"public_key": public_key, "node_id": node_id}
    if bits:
        document["puzzle_bits"] = puzzle_bits(key.node_id)
    if args.json:
        print_json({**document, "path": str(args.out)})
    else:
        sys.stdout.write("".join(f"{name} {value}\n" for name, value in document.items()))
    return 0
