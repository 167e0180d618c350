"""``fairdht trust``: which keys this node trusts, per network and role.

``add KEY``, ``remove KEY``, ``list``, ``threshold K``, ``distrust KEY`` all take
``--network NET [--role ROLE] [--data-dir DIR]``; roles are checkpoint (maintainers),
content and karma. ``rotate`` signs a TUF-style rotation of a role's key set, which
nodes apply once K keys of the old set signed it.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from fairdht.app.servers import open_trust
from fairdht.cli.common import (
    add_bootstrap_option,
    add_data_dir_option,
    add_json_option,
    data_dir_of,
    light_client,
    load_key_of,
    print_json,
)
from fairdht.cli.servers import network_of
from fairdht.errors import RecordError, UsageError
from fairdht.identity.keys import PublicKey
from fairdht.trust import ROLES, sign_rotation

__all__ = ["register"]


def _common(parser: argparse.ArgumentParser, *, network_required: bool = True) -> None:
    parser.add_argument("--network", metavar="NET", required=network_required, default=None)
    # `list` shows every role unless one is named; the other commands default to checkpoint.
    parser.add_argument(
        "--role",
        choices=sorted(ROLES),
        default="checkpoint" if network_required else None,
        help="trust role" + (" (checkpoint)" if network_required else " (default: every role)"),
    )
    add_data_dir_option(parser)
    add_json_option(parser)


def register(subparsers: Any) -> None:
    """Add the ``trust`` command group."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "trust", help="keys this node trusts per network and role"
    )
    sub = parser.add_subparsers(dest="trust_command", metavar="SUBCOMMAND")
    sub.required = True
    for name, helptext, func in (
        ("add", "trust a key", _run_add),
        ("remove", "stop trusting a key (a shipped default too)", _run_remove),
        ("distrust", "mark a key as distrusted (its servers are never listed)", _run_distrust),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("key", metavar="KEY", help="Ed25519 public key, 64 hex digits")
        _common(p)
        p.set_defaults(func=func)
    ls = sub.add_parser("list", help="trusted keys and thresholds")
    _common(ls, network_required=False)
    ls.set_defaults(func=_run_list)
    th = sub.add_parser("threshold", help="set K, how many trusted keys must agree")
    th.add_argument("k", metavar="K", help="1 to 255")
    _common(th)
    th.set_defaults(func=_run_threshold)
    rot = sub.add_parser("rotate", help="sign a rotation of a role's key set (K of the old set)")
    rot.add_argument("--key", metavar="PATH", required=True, help="your (old-set) maintainer key")
    rot.add_argument("--version", type=int, required=True, help="new key-set version")
    rot.add_argument("--keys", required=True, help="the new set: comma-separated hex keys")
    rot.add_argument("--new-threshold", type=int, required=True, help="K of the new set")
    add_bootstrap_option(rot, required=True)
    _common(rot)
    rot.set_defaults(func=_run_rotate)


def _key(text: str) -> bytes:
    return PublicKey.from_hex(text).raw


def _say(args: argparse.Namespace, change: str, role: str, line: str) -> int:
    if args.json:
        print_json(
            {"change": change, "key": args.key.lower(), "network": args.network, "role": role}
        )
    else:
        print(line)
    return 0


def _run_add(args: argparse.Namespace) -> int:
    open_trust(data_dir_of(args)).add(network_of(args), args.role, _key(args.key))
    line = f"trusted {args.key.lower()} as {args.role} key on {args.network}"
    return _say(args, "added", args.role, line)


def _run_remove(args: argparse.Namespace) -> int:
    open_trust(data_dir_of(args)).remove(network_of(args), args.role, _key(args.key))
    line = f"removed {args.key.lower()} from the {args.role} keys of {args.network}"
    return _say(args, "removed", args.role, line)


def _run_distrust(args: argparse.Namespace) -> int:
    open_trust(data_dir_of(args)).distrust(network_of(args), _key(args.key))
    return _say(
        args, "distrusted", "distrusted", f"distrusted {args.key.lower()} on {args.network}"
    )


def _run_threshold(args: argparse.Namespace) -> int:
    if not args.k.isdigit():
        raise UsageError("a threshold is a whole number from 1 to 255")
    store = open_trust(data_dir_of(args))
    network = network_of(args)
    store.set_threshold(network, args.role, int(args.k))
    have = len(store.keys(network, args.role))
    note = (
        "" if have >= int(args.k) else f" (only {have} keys are trusted: nothing will be accepted)"
    )
    print(f"{args.role} threshold on {network} is now {args.k}{note}")
    return 0


def _run_list(args: argparse.Namespace) -> int:
    store = open_trust(data_dir_of(args))
    networks = [network_of(args)] if args.network else store.networks()
    rows: list[dict[str, Any]] = []
    for network in networks:
        for role in sorted(ROLES) if args.role is None else [args.role]:
            keys = sorted(k.hex() for k in store.keys(network, role))
            if keys or args.network:
                rows.append(
                    {
                        "network": network,
                        "role": role,
                        "threshold": store.threshold(network, role),
                        "version": store.keyset_version(network, role),
                        "keys": keys,
                    }
                )
        distrusted = sorted(k.hex() for k in store.distrusted(network))
        if distrusted and args.role is None:
            rows.append({"network": network, "role": "distrusted", "keys": distrusted})
    if args.json:
        print_json({"trust": rows})
        return 0
    for row in rows:
        head = f"{row['network']} {row['role']}"
        if "threshold" in row:
            head += f" (threshold {row['threshold']} of {len(row['keys'])})"
        print(head)
        for k in row["keys"]:
            print(f"  {k}")
    return 0


def _run_rotate(args: argparse.Namespace) -> int:
    network = network_of(args)
    keys = {_key(k) for k in args.keys.split(",") if k.strip()}
    signer = load_key_of(args)
    try:
        record = sign_rotation(
            signer, network, args.role, args.version, keys, args.new_threshold, now=time.time()
        )
    except RecordError as exc:
        raise UsageError(str(exc)) from None

    async def put() -> int:
        async with light_client(args) as node:
            return (await node.put(record)).accepted

    accepted = asyncio.run(put())
    print(
        f"signed {args.role} key-set v{args.version} of {network} ({len(keys)} keys, "
        f"threshold {args.new_threshold}); accepted by {accepted} replicas"
    )
    return 0
