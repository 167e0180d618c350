"""``fairdht karma vote`` and ``fairdht karma show``: cast a vote, read an explained score.

Both run as light clients (``--bootstrap``). ``show`` reads with the reader's own
view: its key (``--key``), the ``karma`` raters and distrusted keys of its trust
store and its policy file (``--policy``, else ``DATA_DIR/karma-policy.toml`` if
present, else the defaults); see docs/karma.md.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from fairdht.app.karma import read_view, score_document, vote
from fairdht.app.play import cast_due_votes
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
from fairdht.errors import BadBody, UsageError
from fairdht.identity.keys import PublicKey, SigningKey
from fairdht.karma.fetch import FetchedView
from fairdht.karma.score import KarmaScore, score_subject
from fairdht.node.karma_state import POLICY_FILE_NAME
from fairdht.records.envelope import check_network_name
from fairdht.records.kinds.karma import ACTIONS, MAX_EVIDENCE_BYTES, KarmaVote
from fairdht.trust import DEMO_NETWORK

__all__ = ["register", "run_cast_held", "run_show", "run_vote"]


def register(subparsers: Any) -> None:
    """Add the ``karma`` command group (``vote`` and ``show``)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "karma", help="rate nodes and read their karma"
    )
    sub = parser.add_subparsers(dest="karma_command", metavar="SUBCOMMAND")
    sub.required = True

    vote = sub.add_parser("vote", help="sign and publish a karma vote about a key")
    vote.add_argument("subject", metavar="SUBJECT", help="the rated node's public key (hex)")
    vote.add_argument("action", metavar="ACTION", help=f"one of: {', '.join(ACTIONS)}")
    vote.add_argument("--context", default="", help="match, server or session id (ASCII)")
    vote.add_argument(
        "--evidence",
        metavar="FILE",
        type=Path,
        help=f"attach up to {MAX_EVIDENCE_BYTES} bytes (e.g. a signed outcome)",
    )
    vote.add_argument(
        "--withdraw", action="store_true", help="withdraw this (subject, action, context) vote"
    )
    _common(vote)
    vote.set_defaults(func=run_vote)

    show = sub.add_parser("show", help="a key's karma score and color in your own view")
    show.add_argument("subject", metavar="SUBJECT", help="the node's public key (hex)")
    show.add_argument("--explain", action="store_true", help="list every vote and its weight")
    show.add_argument(
        "--policy",
        metavar="FILE",
        type=Path,
        help=f"policy file (default DATA_DIR/{POLICY_FILE_NAME})",
    )
    _common(show)
    show.set_defaults(func=run_show)

    held = sub.add_parser(
        "cast-held",
        help="cast the anonymous match votes held in DATA_DIR that are due (docs/karma.md)",
    )
    _common(held)
    held.set_defaults(func=run_cast_held)


def _common(parser: argparse.ArgumentParser) -> None:
    add_key_option(parser)
    add_bootstrap_option(parser, required=True)
    add_data_dir_option(parser)
    add_json_option(parser)
    parser.add_argument("--network", default=DEMO_NETWORK, help=f"network (default {DEMO_NETWORK})")


def _subject(text: str) -> bytes:
    return PublicKey.from_hex(text).raw


def _network(text: str) -> str:
    try:
        return check_network_name(text)
    except BadBody as exc:
        raise UsageError(str(exc)) from None


def _evidence(path: Path | None) -> bytes:
    if path is None:
        return b""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read evidence file {path}: {exc.strerror}") from None
    if len(data) > MAX_EVIDENCE_BYTES:
        raise UsageError(
            f"evidence file {path} is {len(data)} bytes; a vote carries at most "
            f"{MAX_EVIDENCE_BYTES} (attach a hash or a content id instead)"
        )
    return data


def run_vote(args: argparse.Namespace) -> int:
    """Sign the vote (or withdrawal), put it and the updated index, and say where it went."""
    subject = _subject(args.subject)
    network = _network(args.network)
    evidence = _evidence(args.evidence)
    try:
        KarmaVote(action=args.action, context=args.context, evidence=evidence)
    except BadBody as exc:
        raise UsageError(str(exc)) from None
    key = load_key_of(args)
    if subject == key.public_key.raw:
        raise UsageError("a key cannot vote on itself")
    doc = asyncio.run(_vote(args, key, network, subject, evidence, time.time()))
    accepted = doc["accepted"]
    if args.json:
        print_json(doc)
    else:
        verb = "withdrew" if args.withdraw else "voted"
        where = f"; stored on {accepted} peer(s)" if isinstance(accepted, int) else ""
        ctx = f" (context {args.context})" if args.context else ""
        sys.stdout.write(f"{verb} {args.action} on {subject.hex()}{ctx}{where}\n")
    return 0


async def _vote(
    args: argparse.Namespace,
    key: SigningKey,
    network: str,
    subject: bytes,
    evidence: bytes,
    now: float,
) -> dict[str, Any]:
    async with light_client(args) as node:
        return await vote(
            node.put,
            node.get,
            key,
            data_dir_of(args),
            network=network,
            subject=subject,
            action=args.action,
            context=args.context,
            evidence=evidence,
            withdraw=args.withdraw,
            now=now,
        )


def run_show(args: argparse.Namespace) -> int:
    """Crawl around the reader (bounded), score the subject and print it, explained if asked."""
    subject = _subject(args.subject)
    network = _network(args.network)
    key = load_key_of(args)

    async def go() -> FetchedView:
        async with light_client(args) as node:
            return await read_view(
                lambda k: node.get(k, include_withdrawn=True, disjoint=True),
                data_dir_of(args),
                reader=key.public_key.raw,
                network=network,
                subjects=[subject],
                now=time.time(),
                policy_path=args.policy,
            )

    fetched = asyncio.run(go())
    if args.json:
        doc = score_document(
            fetched, subject, network=network, reader=key.public_key.raw, explain=args.explain
        )
        print_json(doc)
    else:
        _print_text(score_subject(fetched.view, subject), explain=args.explain)
    return 0


def run_cast_held(args: argparse.Namespace) -> int:
    """Cast the held anonymous votes whose period is over and whose anonymity set is large."""
    data_dir = data_dir_of(args)

    async def go() -> tuple[int, int, int]:
        async with light_client(args) as node:
            return await cast_due_votes(node, data_dir)

    cast, held, dropped = asyncio.run(go())
    if args.json:
        print_json({"cast": cast, "held": held, "dropped": dropped})
    else:
        sys.stdout.write(f"cast {cast}, still held {held}, dropped {dropped}\n")
    return 0


def _print_text(score: KarmaScore, *, explain: bool) -> None:
    sys.stdout.write(f"{score.subject.hex()}  {score.color}  score {score.score:+.4f}\n")
    if explain:
        for v in score.votes:
            ctx = f" [{v.context}]" if v.context else ""
            if v.kind == "anonymous":
                # Tell the two kinds apart: an anonymous vote's weight is its referee's.
                who = f"anonymous {v.voter.hex()[:8]}…, backed by referee {v.referee.hex()[:16]}…"
            else:
                who = f"attributed, by {v.voter.hex()[:16]}…"
            sys.stdout.write(
                f"  {v.contribution:+.4f}  {v.action}{ctx} ({who}) "
                f"weight {v.weight:.4f} ({v.status})\n"
            )
