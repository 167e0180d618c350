"""``fairdht checkpoint``: maintainers sign checkpoints; anyone proves membership.

``checkpoint sign --key KEY --network NET --bootstrap ...`` proposes the next version
over the list this data dir's policy shows; with ``--version V --root R`` it co-signs
another maintainer's proposal. It prints the version and the state root in hex.
``checkpoint prove --network NET --address IP:PORT --author KEY`` fetches the latest
accepted checkpoint's member list and prints (or refuses) a Merkle inclusion proof.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from fairdht.app.servers import open_history, open_trust, read_list
from fairdht.cli.common import (
    add_bootstrap_option,
    add_data_dir_option,
    add_json_option,
    data_dir_of,
    light_client,
    load_key_of,
    print_json,
)
from fairdht.cli.servers import add_network_option, network_of
from fairdht.errors import NotFoundError, RecordError
from fairdht.identity.keys import PublicKey, SigningKey
from fairdht.records.kinds.checkpoint import CONTROL_MAX_TTL
from fairdht.serverlist.announce import make_announcement, server_subkey
from fairdht.serverlist.maintain import SignOutcome, republish_controls, sign_checkpoint
from fairdht.serverlist.merkle import inclusion_proof, leaf_id, verify_inclusion
from fairdht.trust import TrustStore

__all__ = ["outcome_json", "print_outcome", "register"]


def _lifetime(text: str) -> int:
    if not text.isdigit() or not 60 <= int(text) <= CONTROL_MAX_TTL:
        raise argparse.ArgumentTypeError(f"--lifetime must be 60 to {CONTROL_MAX_TTL} seconds")
    return int(text)


def _version(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 2**53:
        raise argparse.ArgumentTypeError("--version must be a positive whole number")
    return int(text)


def register(subparsers: Any) -> None:
    """Add the ``checkpoint`` command group (``sign``, ``prove``)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "checkpoint", help="sign server-list checkpoints (maintainers), prove membership"
    )
    sub = parser.add_subparsers(dest="checkpoint_command", metavar="SUBCOMMAND")
    sub.required = True
    sign = sub.add_parser("sign", help="propose or co-sign a checkpoint")
    sign.add_argument("--key", metavar="PATH", required=True, help="your maintainer key file")
    add_network_option(sign, required=True)
    add_bootstrap_option(sign, required=True)
    sign.add_argument("--version", type=_version, default=None, help="co-sign this version")
    sign.add_argument("--root", default=None, help="co-sign this state root (hex)")
    sign.add_argument(
        "--include-quarantined",
        action="store_true",
        help="admit servers a rollback holds back (use with --exclude-author)",
    )
    sign.add_argument(
        "--exclude-author",
        action="append",
        default=[],
        metavar="KEY",
        help="leave this author key's servers out (repeatable)",
    )
    sign.add_argument(
        "--lifetime", type=_lifetime, default=CONTROL_MAX_TTL, help="seconds until it expires"
    )
    add_data_dir_option(sign)
    add_json_option(sign)
    sign.set_defaults(func=run_sign)
    again = sub.add_parser(
        "republish",
        help="re-publish your checkpoints and rollbacks (and member lists) still in retention",
        description="Maintainers run this every few days (cron): newcomers rebuild the "
        "history's spine from the DHT for 90 days after a checkpoint expired "
        "(docs/serverlist.md, retention).",
    )
    again.add_argument("--key", metavar="PATH", required=True, help="your maintainer key file")
    add_network_option(again, required=True)
    add_bootstrap_option(again, required=True)
    add_data_dir_option(again)
    add_json_option(again)
    again.set_defaults(func=run_republish)
    prove = sub.add_parser("prove", help="Merkle inclusion proof of a server in the checkpoint")
    add_network_option(prove, required=True)
    add_bootstrap_option(prove, required=True)
    prove.add_argument("--address", required=True, help="the server's IP:PORT")
    prove.add_argument("--author", required=True, metavar="KEY", help="the server's key (hex)")
    add_data_dir_option(prove)
    add_json_option(prove)
    prove.set_defaults(func=run_prove)


def outcome_json(o: SignOutcome) -> dict[str, Any]:
    """JSON form of a signing outcome."""
    doc: dict[str, Any] = {
        "kind": o.kind,
        "network": o.network,
        "version": o.version,
        "root": o.root.hex(),
        "members": o.members.hex(),
        "count": o.count,
        "signatures": o.signers,
        "threshold": o.threshold,
        "cosigned": o.cosigned,
    }
    if o.kind == "rollback":
        doc["target_version"] = o.target_version
    return doc


def print_outcome(o: SignOutcome) -> None:
    """Human lines: what was signed, then how many signatures it has of K."""
    what = "co-signed" if o.cosigned else "proposed"
    target = f" to checkpoint v{o.target_version}" if o.kind == "rollback" else ""
    print(f"{what} {o.kind}{target} of {o.network}")
    print(f"version {o.version}")
    print(f"root {o.root.hex()}")
    state = "accepted by nodes that trust these keys" if o.signers >= o.threshold else "pending"
    print(f"signatures {o.signers} of {o.threshold} ({state}); {o.count} members")


def run_sign(args: argparse.Namespace) -> int:
    """Propose or co-sign a checkpoint."""
    network = network_of(args)
    key = load_key_of(args)
    exclude = [PublicKey.from_hex(k).raw for k in args.exclude_author]
    data_dir = data_dir_of(args)
    history, trust = open_history(data_dir), open_trust(data_dir)

    async def go() -> SignOutcome:
        async with light_client(args) as node:
            return await sign_checkpoint(
                node.get,
                node.put,
                key,
                network,
                history=history,
                trust=trust,
                now=time.time(),
                version=args.version,
                root=args.root,
                include_quarantined=args.include_quarantined,
                exclude=exclude,
                lifetime=args.lifetime,
            )

    outcome = asyncio.run(go())
    if args.json:
        print_json(outcome_json(outcome))
    else:
        print_outcome(outcome)
    explain_untrusted_signer(key, network, trust)
    return 0


def explain_untrusted_signer(key: SigningKey, network: str, trust: TrustStore) -> None:
    """Say on stderr why a signature counts for nothing here: the signer is not trusted."""
    if key.public_key.raw in trust.keys(network, "checkpoint"):
        return
    hexkey = key.public_key.hex()
    sys.stderr.write(
        f"note: {hexkey[:16]}… is not a checkpoint key this data dir trusts for {network}, so "
        "its signature counts neither here nor on nodes that do not trust it; if it is a "
        f"maintainer key, run: fairdht trust add {hexkey} --network {network} --role checkpoint\n"
    )


def run_republish(args: argparse.Namespace) -> int:
    """Re-sign this maintainer's control records still in retention, unchanged."""
    network = network_of(args)
    key = load_key_of(args)
    history = open_history(data_dir_of(args))

    async def go() -> int:
        async with light_client(args) as node:
            return await republish_controls(
                node.get, node.put, key, network, history=history, now=time.time()
            )

    count = asyncio.run(go())
    if args.json:
        print_json({"network": network, "republished": count})
    else:
        print(f"re-published {count} control record{'' if count == 1 else 's'} of {network}")
    return 0


def run_prove(args: argparse.Namespace) -> int:
    """Print an inclusion proof; exit 1 if the server is not a member."""
    network = network_of(args)
    author = PublicKey.from_hex(args.author).raw
    address = make_announcement(address=args.address, name="x").address
    leaf = leaf_id(network, author, server_subkey(address), address)
    data_dir = data_dir_of(args)

    async def go() -> tuple[int, bytes, tuple[bytes, ...]]:
        async with light_client(args) as node:
            view = await read_list(
                node.get, network, data_dir, now=time.time(), control_get=node.secure_get
            )
        policy = view.policy
        if policy.root is None:
            raise NotFoundError(f"no accepted checkpoint for {network} in this data dir")
        return policy.version, policy.root, tuple(sorted(policy.members))

    version, root, leaves = asyncio.run(go())
    try:
        index, size, path = inclusion_proof(list(leaves), leaf)
    except KeyError:
        raise NotFoundError(
            f"{address} by {args.author[:16]}… is not a member of checkpoint v{version}"
        ) from None
    if not verify_inclusion(leaf, index, size, path, root):
        raise RecordError("the inclusion proof does not verify (corrupt member list)")
    doc = {
        "network": network,
        "version": version,
        "root": root.hex(),
        "leaf": leaf.hex(),
        "index": index,
        "size": size,
        "path": [p.hex() for p in path],
        "verified": True,
    }
    if args.json:
        print_json(doc)
    else:
        print(f"leaf {leaf.hex()} is member {index} of {size} in checkpoint v{version}")
        print(f"root {root.hex()}")
        for p in path:
            print(f"  {p.hex()}")
    return 0
