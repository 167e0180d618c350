"""``fairdht keygen --out PATH [--puzzle-bits D]``: create a key file and print its public
key and node id (with D, one whose id solves S/Kademlia's static puzzle);
``fairdht key show PATH``: print the same lines for an existing key file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from fairdht.cli.common import add_json_option, print_json
from fairdht.errors import UsageError
from fairdht.identity import SigningKey, load_key, puzzle_bits, write_key
from fairdht.trust.defaults import demo_placeholder_key

__all__ = ["register", "run", "run_show"]


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
    parser.add_argument(
        "--demo-placeholder",
        action="store_true",
        help="write the demo network's maintainer key, whose secret is public by design "
        "(it signs demo checkpoints; never use it for a real network)",
    )
    add_json_option(parser)
    parser.set_defaults(func=run)
    key: argparse.ArgumentParser = subparsers.add_parser(
        "key", help="show the public key and node id of a key file"
    )
    sub = key.add_subparsers(dest="key_command", metavar="SUBCOMMAND")
    sub.required = True
    show = sub.add_parser("show", help="print what keygen printed for this key file")
    show.add_argument("path", metavar="PATH", type=Path, help="the key file")
    add_json_option(show)
    show.set_defaults(func=run_show)


def run(args: argparse.Namespace) -> int:
    """Write a new key to ``args.out`` (never overwriting) and print who it is."""
    bits = args.puzzle_bits
    if not 0 <= bits <= 32:
        raise UsageError("--puzzle-bits must be 0..32")
    if args.demo_placeholder:
        if bits:
            raise UsageError("--demo-placeholder is one fixed key: it takes no --puzzle-bits")
        key = demo_placeholder_key()
    elif bits:
        # Imported here so a plain `fairdht keygen` starts without the DHT stack.
        from fairdht.dht.admission import generate_key

        key = generate_key(bits)
    else:
        key = SigningKey.generate()
    write_key(args.out, key)
    _print_identity(key, args.out, json_output=args.json, with_bits=bool(bits))
    return 0


def run_show(args: argparse.Namespace) -> int:
    """Print the public key and node id of the key file at ``args.path``."""
    key = load_key(args.path)
    _print_identity(key, args.path, json_output=args.json, with_bits=False)
    return 0


def _print_identity(key: SigningKey, path: Path, *, json_output: bool, with_bits: bool) -> None:
    document: dict[str, Any] = {"public_key": key.public_key.hex(), "node_id": key.node_id.hex()}
    if with_bits:
        document["puzzle_bits"] = puzzle_bits(key.node_id)
    if json_output:
        print_json({**document, "path": str(path)})
    else:
        sys.stdout.write("".join(f"{name} {value}\n" for name, value in document.items()))
