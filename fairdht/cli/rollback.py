"""``fairdht rollback --to STATE_ROOT``: sign (or co-sign) a rollback to a checkpoint.

The target must be a checkpoint that K trusted maintainer keys agreed on. The first
maintainer proposes a new control version; the others running the same command co-sign
the identical body. Nodes apply it once K keys signed (docs/serverlist.md).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from fairdht.app.servers import open_history, open_trust
from fairdht.cli.checkpoint import explain_untrusted_signer, outcome_json, print_outcome
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
from fairdht.records.kinds.checkpoint import CONTROL_MAX_TTL
from fairdht.serverlist.maintain import SignOutcome, sign_rollback

__all__ = ["register", "run_rollback"]


def _lifetime(text: str) -> int:
    if not text.isdigit() or not 60 <= int(text) <= CONTROL_MAX_TTL:
        raise argparse.ArgumentTypeError(f"--lifetime must be 60 to {CONTROL_MAX_TTL} seconds")
    return int(text)


def register(subparsers: Any) -> None:
    """Add the ``rollback`` command."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "rollback", help="sign a rollback of a server list to an earlier checkpoint"
    )
    parser.add_argument("--to", required=True, metavar="STATE_ROOT", help="target root (hex)")
    parser.add_argument("--key", metavar="PATH", required=True, help="your maintainer key file")
    add_network_option(parser, required=True)
    parser.add_argument("--reason", default="", help="why (at most 200 characters)")
    parser.add_argument(
        "--lifetime",
        type=_lifetime,
        default=CONTROL_MAX_TTL,
        help="seconds the list stays closed to non-members",
    )
    add_bootstrap_option(parser, required=True)
    add_data_dir_option(parser)
    add_json_option(parser)
    parser.set_defaults(func=run_rollback)


def run_rollback(args: argparse.Namespace) -> int:
    """Sign or co-sign the rollback and say how many signatures it has."""
    network = network_of(args)
    key = load_key_of(args)
    data_dir = data_dir_of(args)
    history, trust = open_history(data_dir), open_trust(data_dir)

    async def go() -> SignOutcome:
        async with light_client(args) as node:
            return await sign_rollback(
                node.get,
                node.put,
                key,
                network,
                args.to,
                history=history,
                trust=trust,
                now=time.time(),
                reason=args.reason,
                lifetime=args.lifetime,
            )

    outcome = asyncio.run(go())
    if args.json:
        print_json(outcome_json(outcome))
    else:
        print_outcome(outcome)
    explain_untrusted_signer(key, network, trust)
    return 0
