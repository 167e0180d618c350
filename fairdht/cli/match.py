"""``fairdht match commit|reveal|show``: the commit-reveal round that seeds referee ranking.

``commit`` draws a fresh 32-byte nonce, saves it (0600) under the data dir before
publishing the commitment, so the reveal can follow after a restart; ``reveal``
publishes the saved nonce once its commitment is on the network; ``show`` prints the
round as every node tallies it (docs/referee.md, "Commit-reveal").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from fairdht.cli.common import (
    add_bootstrap_option,
    add_data_dir_option,
    add_json_option,
    add_key_option,
    data_dir_of,
    light_client,
    load_key_of,
    print_json,
)
from fairdht.cli.referee import add_network_option, match_id, parse_player_keys
from fairdht.errors import NotFoundError, UsageError
from fairdht.identity.keys import SigningKey
from fairdht.records.kinds.match import NONCE_BYTES, match_key
from fairdht.referee.commit_reveal import Round, sign_commit, sign_reveal, tally

__all__ = ["nonce_path", "register", "round_document", "run_commit", "run_reveal", "run_show"]


def nonce_path(data_dir: Path, network: str, match_id: str, key: SigningKey) -> Path:
    """Where the nonce of ``key``'s player for ``match_id`` is kept until it is revealed."""
    return data_dir / "match-nonces" / network / f"{match_id}.{key.public_key.hex()[:16]}.nonce"


def register(subparsers: Any) -> None:
    """Add the ``match`` command group."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "match", help="commit to and reveal a nonce for a match's referee ranking"
    )
    sub = parser.add_subparsers(dest="match_command", metavar="ACTION")
    sub.required = True
    for name, func, text in (
        ("commit", run_commit, "publish a commitment to a fresh random nonce"),
        ("reveal", run_reveal, "publish the nonce committed to earlier"),
        ("show", run_show, "show the round: commitments, reveals, missing reveals"),
    ):
        p: argparse.ArgumentParser = sub.add_parser(name, help=text)
        p.add_argument("--match", metavar="ID", type=match_id, required=True, help="the match id")
        if name == "show":
            p.add_argument(
                "--players", type=parse_player_keys, default=None, help="the match's players"
            )
        else:
            add_key_option(p)
        add_data_dir_option(p)
        add_bootstrap_option(p, required=True)
        add_network_option(p)
        add_json_option(p)
        p.set_defaults(func=func)


def _save_nonce(path: Path) -> bytes:
    """The saved nonce at ``path``, or a new one written there (0600) first."""
    if path.exists():
        return _load_nonce(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    nonce = secrets.token_bytes(NONCE_BYTES)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(nonce.hex() + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return nonce


def _load_nonce(path: Path) -> bytes:
    try:
        nonce = bytes.fromhex(path.read_text(encoding="ascii").strip())
    except FileNotFoundError:
        raise UsageError(
            f"no committed nonce at {path}; run `fairdht match commit` first"
        ) from None
    except (OSError, ValueError, UnicodeDecodeError):
        raise UsageError(f"{path} is not a nonce file") from None
    if len(nonce) != NONCE_BYTES:
        raise UsageError(f"{path} is not a nonce file")
    return nonce


def run_commit(args: argparse.Namespace) -> int:
    """Publish the commitment of a fresh (or already saved) nonce."""
    key = load_key_of(args)
    nonce = _save_nonce(nonce_path(data_dir_of(args), args.network, args.match, key))
    record = sign_commit(key, args.network, args.match, nonce, now=time.time())

    async def go() -> int:
        async with light_client(args) as node:
            return (await node.put(record)).accepted

    accepted = asyncio.run(go())
    doc = {"match": args.match, "player": key.public_key.hex(), "accepted": accepted}
    if args.json:
        print_json({**doc, "commitment": record.body.commitment.hex()})
    else:
        sys.stdout.write(f"committed {args.match} accepted {accepted}\n")
    return 0


def run_reveal(args: argparse.Namespace) -> int:
    """Publish the saved nonce; refuse if the network holds no matching commitment."""
    key = load_key_of(args)
    nonce = _load_nonce(nonce_path(data_dir_of(args), args.network, args.match, key))
    me = key.public_key.raw

    async def go() -> int:
        async with light_client(args) as node:
            records = await node.get(match_key(args.network, args.match))
            rnd = tally(records, match_id=args.match, players=None, now=time.time())
            if me not in rnd.committed:
                raise NotFoundError(f"no commitment of yours for match {args.match} was found")
            record = sign_reveal(key, args.network, args.match, nonce, now=time.time())
            return (await node.put(record)).accepted

    accepted = asyncio.run(go())
    if args.json:
        print_json({"match": args.match, "player": key.public_key.hex(), "accepted": accepted})
    else:
        sys.stdout.write(f"revealed {args.match} accepted {accepted}\n")
    return 0


def round_document(rnd: Round) -> dict[str, Any]:
    """The JSON form of a tallied round."""
    return {
        "match": rnd.match_id,
        "players": [p.hex() for p in rnd.players],
        "committed": [p.hex() for p in rnd.committed],
        "revealed": [p.hex() for p in rnd.revealed],
        "missing_commits": [p.hex() for p in rnd.missing_commits],
        "pending_reveals": [p.hex() for p in rnd.pending_reveals],
        "missing_reveals": [p.hex() for p in rnd.missing_reveals],
        "bad_reveals": [p.hex() for p in rnd.bad_reveals],
        "reveal_deadline": rnd.deadline,
        "closed": rnd.closed,
    }


def run_show(args: argparse.Namespace) -> int:
    """Print the round of ``args.match`` as tallied now."""

    async def go() -> Round:
        async with light_client(args) as node:
            records = await node.get(match_key(args.network, args.match))
            return tally(records, match_id=args.match, players=args.players, now=time.time())

    doc = round_document(asyncio.run(go()))
    if args.json:
        print_json(doc)
    else:
        for name, value in doc.items():
            shown = " ".join(value) if isinstance(value, list) else value
            sys.stdout.write(f"{name} {shown}\n")
    return 0
