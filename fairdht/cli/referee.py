"""``fairdht referee offer`` and ``fairdht referees``: offer to referee, and find referees.

``referee offer`` signs an offer for one code hash, keeps it alive until SIGINT or
SIGTERM and then withdraws it. ``referees`` reads the offers under a code hash, the
match's commit-reveal round when ``--match`` is given, and prints the eligible
referees in rank order (docs/referee.md).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from typing import Any

from fairdht.app.karma import reader_karma
from fairdht.app.referees import NO_REFEREE, RefereeSearch, find_referees, referees_document
from fairdht.cli.common import (
    add_bootstrap_option,
    add_data_dir_option,
    add_json_option,
    add_key_option,
    data_dir_of,
    key_path_of,
    light_client,
    load_key_of,
    parse_endpoint,
    print_json,
)
from fairdht.dht import DHTNode
from fairdht.errors import BadBody, UsageError
from fairdht.identity.keys import PublicKey
from fairdht.records.envelope import Record
from fairdht.records.kinds.referee import (
    MAX_CAPACITY,
    MAX_CLUSTER,
    OFFER_MAX_TTL,
    RefereeOffer,
    check_game_id,
)
from fairdht.referee.codehash import parse_code_hash
from fairdht.referee.offers import sign_offer, withdraw_offer
from fairdht.trust import DEMO_NETWORK, TrustStore

__all__ = [
    "add_network_option",
    "game_id",
    "match_id",
    "parse_player_keys",
    "register",
    "run_offer",
    "run_referees",
]

TRUST_FILE = "trust.sqlite"


def add_network_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--network NET`` (default: the demo network)."""
    parser.add_argument(
        "--network", default=DEMO_NETWORK, help=f"network name (default {DEMO_NETWORK})"
    )


def parse_player_keys(text: str) -> list[bytes]:
    """argparse type of ``--players K1,K2,...``: up to 16 distinct hex public keys, sorted."""
    items = [t for t in text.replace(" ", "").split(",") if t]
    try:
        keys = sorted({PublicKey.from_hex(t).raw for t in items})
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if len(keys) > MAX_CLUSTER:
        raise argparse.ArgumentTypeError(f"at most {MAX_CLUSTER} players, got {len(keys)}")
    return keys


def game_id(text: str) -> str:
    """argparse type of a game or match id."""
    try:
        return check_game_id(text)
    except BadBody as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def match_id(text: str) -> str:
    """argparse type of a match id."""
    try:
        return check_game_id(text, what="match id")
    except BadBody as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _code_hash(text: str) -> bytes:
    try:
        return parse_code_hash(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise argparse.ArgumentTypeError(f"{text!r} must be a count from 1 to 64")
    return int(text)


def _capacity(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= MAX_CAPACITY:
        raise argparse.ArgumentTypeError(f"{text!r} must be from 0 to {MAX_CAPACITY}")
    return int(text)


def _endpoint(text: str) -> str:
    return str(parse_endpoint(text, what="endpoint", allow_hostname=False))


def register(subparsers: Any) -> None:
    """Add the ``referee`` command group and the ``referees`` command."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "referee", help="offer to referee matches of a code hash"
    )
    sub = parser.add_subparsers(dest="referee_command", metavar="ACTION")
    sub.required = True
    offer: argparse.ArgumentParser = sub.add_parser(
        "offer", help="sign an offer, keep it alive, withdraw it on exit"
    )
    offer.add_argument("--code-hash", type=_code_hash, required=True, help="code hash to run")
    offer.add_argument("--game", type=game_id, required=True, help="id of the game you play in")
    offer.add_argument(
        "--players",
        metavar="K1,K2,...",
        type=parse_player_keys,
        default=[],
        help="your game's players, up to 16 (may only narrow your eligibility)",
    )
    offer.add_argument("--endpoint", type=_endpoint, required=True, help="IP:PORT players reach")
    offer.add_argument("--capacity", type=_capacity, default=1, help="matches at once (default 1)")
    offer.add_argument("--load", type=_capacity, default=0, help="matches refereed now")
    offer.add_argument(
        "--ttl", type=int, default=OFFER_MAX_TTL, help=f"offer lifetime (default {OFFER_MAX_TTL})"
    )
    offer.add_argument("--once", action="store_true", help="publish once and exit")
    add_key_option(offer)
    add_data_dir_option(offer)
    add_bootstrap_option(offer, required=True)
    add_network_option(offer)
    add_json_option(offer)
    offer.set_defaults(func=run_offer)
    from fairdht.cli.session_cmds import add_serve_parser  # serve lives with play (issue 6)

    add_serve_parser(sub)

    refs: argparse.ArgumentParser = subparsers.add_parser(
        "referees", help="list eligible referees for a code hash, in rank order"
    )
    refs.add_argument(
        "code_hash", metavar="CODE_HASH", type=_code_hash, help="code hash (fairdht codehash)"
    )
    refs.add_argument(
        "--players",
        metavar="K1,K2,...",
        type=parse_player_keys,
        default=None,
        help="the match's players (hex keys)",
    )
    refs.add_argument(
        "--match",
        metavar="ID",
        type=match_id,
        default=None,
        help="use this match's revealed nonces",
    )
    refs.add_argument(
        "--count", metavar="R", type=_count, default=1, help="referees wanted (default 1)"
    )
    refs.add_argument("--explain", action="store_true", help="show why each offer was kept")
    add_data_dir_option(refs)
    add_key_option(refs)
    add_bootstrap_option(refs, required=True)
    add_network_option(refs)
    add_json_option(refs)
    refs.set_defaults(func=run_referees)


def run_offer(args: argparse.Namespace) -> int:
    """Publish the offer; unless ``--once``, keep it alive until a signal, then withdraw."""
    key = load_key_of(args)
    if not 60 <= args.ttl <= OFFER_MAX_TTL:
        raise UsageError(f"--ttl must be between 60 and {OFFER_MAX_TTL} seconds")
    body = RefereeOffer(
        game=args.game,
        players=tuple(args.players),
        endpoint=args.endpoint,
        capacity=args.capacity,
        load=args.load,
    )

    def make(now: float) -> Record:
        return sign_offer(key, args.network, args.code_hash, body, now=now, ttl=args.ttl)

    async def go() -> int:
        # Handlers go in before the first line is printed, so a supervisor that signals
        # as soon as it reads that line always gets the withdrawal.
        stop = asyncio.Event()
        if args.once:
            return await offer_until(stop)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            return await offer_until(stop)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    async def offer_until(stop: asyncio.Event) -> int:
        async with light_client(args) as node:
            # keep_alive puts at once, then every ttl/3 s; the first result is reported.
            alive = node.keep_alive(make, every=args.ttl / 3)
            try:
                result = await alive.first()
                doc = {
                    "code_hash": args.code_hash.hex(),
                    "referee": key.public_key.hex(),
                    "endpoint": args.endpoint,
                    "game": args.game,
                    "accepted": result.accepted,
                }
                if args.json:
                    print_json(doc)
                else:
                    sys.stdout.write(
                        f"offer {doc['code_hash']} referee {doc['referee']} "
                        f"endpoint {args.endpoint} accepted {result.accepted}\n"
                    )
                sys.stdout.flush()
                if not args.once:
                    await stop.wait()
            finally:
                alive.cancel()
            if args.once:
                return 0
            await node.put(withdraw_offer(key, args.network, args.code_hash, now=time.time()))
            sys.stdout.write("withdrawn\n")
            return 0

    return asyncio.run(go())


def _trust(args: argparse.Namespace) -> TrustStore | None:
    path = data_dir_of(args) / TRUST_FILE
    # A read command must not create state: without a trust file nothing is distrusted.
    return TrustStore(path) if path.exists() else None


async def _karma_scores(
    node: DHTNode, args: argparse.Namespace, subjects: list[bytes], now: float
) -> dict[bytes, float] | None:
    """Karma of ``subjects`` in the asker's own view, or None without a key file."""
    scores = await reader_karma(
        lambda k: node.get(k, include_withdrawn=True, disjoint=True),
        data_dir=data_dir_of(args),
        key_path=key_path_of(args),
        network=args.network,
        subjects=subjects,
        now=now,
    )
    return None if scores is None else {s: score for s, (score, _) in scores.items()}


def run_referees(args: argparse.Namespace) -> int:
    """Print the eligible referees for ``args.code_hash``; exit 1 when there is none."""

    async def go() -> RefereeSearch:
        async with light_client(args) as node:
            now = time.time()
            trust = _trust(args)

            async def karma_of(subjects: list[bytes]) -> dict[bytes, float] | None:
                return await _karma_scores(node, args, subjects, now)

            return await find_referees(
                lambda k: node.get(k, include_withdrawn=True),
                network=args.network,
                code_hash=args.code_hash,
                players=args.players,
                match_id=args.match,
                now=now,
                count=args.count,
                explain=args.explain,
                distrusted=trust.distrusted(args.network) if trust else frozenset(),
                karma_of=karma_of,
            )

    search = asyncio.run(go())
    doc = referees_document(search, explain=args.explain)
    if args.json:
        print_json(doc)
    else:
        _print_text(doc)
    if not search.selection.referees:
        sys.stderr.write(f"fairdht: {NO_REFEREE}\n")
        return 1
    return 0


def _print_text(doc: dict[str, Any]) -> None:
    out = sys.stdout
    for r in doc["referees"]:
        karma = "-" if r["karma"] is None else f"{r['karma']:+.3f}"
        out.write(f"{r['rank']:>3} {r['referee']} {r['endpoint']} game {r['game']} karma {karma}\n")
    for name in ("missing_commits", "pending_reveals", "missing_reveals"):
        if doc[name]:
            out.write(f"{name} {' '.join(doc[name])}\n")
    for c in doc.get("candidates", []):
        rank = "-" if c["rank"] is None else str(c["rank"])
        out.write(f"{c['status']:<8} {c['reason']:<22} rank {rank:>3} {c['referee']}\n")
