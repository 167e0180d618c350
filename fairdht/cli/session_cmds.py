"""``fairdht referee serve`` and ``fairdht play``: host and play refereed matches (issue 6)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from fairdht.app.play import hold_match_votes, play_match, play_ranked
from fairdht.app.referee_service import RefereeService
from fairdht.cli.common import (
    Endpoint,
    add_bootstrap_option,
    add_data_dir_option,
    add_json_option,
    add_key_option,
    data_dir_of,
    light_client,
    listen_endpoint,
    load_key_of,
    parse_endpoint,
    print_json,
)
from fairdht.cli.referee import (
    _capacity,
    _code_hash,
    _endpoint,
    add_network_option,
    game_id,
    match_id,
    parse_player_keys,
)
from fairdht.content.bundle import fetch_bundle, write_bundle
from fairdht.errors import UsageError
from fairdht.identity.keys import PublicKey
from fairdht.records.kinds.outcome import MatchOutcome
from fairdht.referee.codehash import code_hash
from fairdht.session.bot import CHEATS
from fairdht.trust import TrustStore

__all__ = ["add_serve_parser", "register"]

log = logging.getLogger(__name__)
_TRUST_FILE = "trust.sqlite"


def _public_key(text: str) -> bytes:
    try:
        return PublicKey.from_hex(text).raw
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _relay_endpoint(text: str) -> Endpoint:
    """argparse type of ``--via``: a public node's ``IP:PORT`` (an IP literal: it goes in the offer)."""
    return parse_endpoint(text, what="relay address", allow_hostname=False)


def _deadline(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value <= 3600:
        raise argparse.ArgumentTypeError("--deadline must be between 0 and 3600 seconds")
    return value


def add_serve_parser(sub: Any) -> None:
    """Add ``referee serve`` to the ``referee`` command group."""
    serve: argparse.ArgumentParser = sub.add_parser(
        "serve", help="offer to referee a bundle's matches, host them, publish outcomes"
    )
    what = serve.add_mutually_exclusive_group(required=True)
    what.add_argument("--bundle", type=Path, help="local game bundle directory to run")
    what.add_argument(
        "--code-hash",
        type=_code_hash,
        help="fetch this bundle from the network (signer must be in your content role)",
    )
    serve.add_argument(
        "--trust-code",
        metavar="HASH",
        type=_code_hash,
        action="append",
        default=[],
        help="a code hash you trust to run (repeatable); --bundle must match one",
    )
    serve.add_argument("--game", type=game_id, required=True, help="id of the game you play in")
    serve.add_argument(
        "--players",
        metavar="K1,K2,...",
        type=parse_player_keys,
        default=[],
        help="your own game's players (may only narrow your eligibility; your signed match seats decide)",
    )
    serve.add_argument(
        "--listen",
        type=listen_endpoint,
        default=None,
        help="UDP address of a QUIC socket of its own for players (default: sessions share "
        "the DHT socket, which NAT mappings and punches keep open); without --endpoint a "
        "wildcard advertises this host's address towards the entry node",
    )
    serve.add_argument("--endpoint", type=_endpoint, default=None, help="advertised IP:PORT")
    serve.add_argument(
        "--via",
        metavar="IP:PORT",
        type=_relay_endpoint,
        action="append",
        default=[],
        help="behind NAT: a public node to register at and offer as your relay (repeat for "
        "two); players punch or relay through it (docs/nat.md)",
    )
    serve.add_argument("--capacity", type=_capacity, default=2, help="matches at once")
    serve.add_argument("--tick-ms", type=int, default=100, help="game tick (default 100 ms)")
    serve.add_argument(
        "--matches", type=int, default=0, help="exit after N matches (0: run until signalled)"
    )
    add_key_option(serve)
    add_data_dir_option(serve)
    add_bootstrap_option(serve, required=True)
    add_network_option(serve)
    add_json_option(serve)
    serve.set_defaults(func=run_serve)


def register(subparsers: Any) -> None:
    """Add ``play``."""
    play: argparse.ArgumentParser = subparsers.add_parser(
        "play", help="play a refereed match of the example arena game with a bot"
    )
    play.add_argument("--match", type=match_id, required=True, help="match id")
    play.add_argument("--code-hash", type=_code_hash, required=True, help="the game's code hash")
    play.add_argument(
        "--referee",
        type=_public_key,
        default=None,
        help="chosen referee (hex key); default: rank 1 of the match's public ranking",
    )
    play.add_argument(
        "--deadline",
        type=_deadline,
        default=60.0,
        help="seconds to keep looking for an eligible referee (default 60)",
    )
    play.add_argument(
        "--players",
        metavar="K1,K2,...",
        type=parse_player_keys,
        required=True,
        help="every player of the match, you included",
    )
    play.add_argument("--map", default="arena", help="map name (attested)")
    play.add_argument("--mode", default="tag", help="mode (attested)")
    play.add_argument("--seed", default="fairdht", help="match seed (attested setting)")
    play.add_argument("--duration-ms", type=int, default=10_000, help="match length (attested)")
    play.add_argument("--cheat", choices=CHEATS, default="none", help="make the bot cheat")
    play.add_argument(
        "--anon-votes",
        action="store_true",
        help="after a completed match, get blind tokens to rate the referee and players"
        " anonymously (held in DATA_DIR until `fairdht karma cast-held` may cast them)",
    )
    add_key_option(play)
    add_data_dir_option(play)
    add_bootstrap_option(play, required=True)
    add_network_option(play)
    add_json_option(play)
    play.set_defaults(func=run_play)


def _outcome_doc(record: Any) -> dict[str, Any]:
    body = record.body_as(MatchOutcome)
    return {
        "match": body.match_id,
        "referee": record.author.hex(),
        "code_hash": body.code_hash.hex(),
        "status": body.status,
        "detail": body.detail,
        "winner": body.players[body.winner].hex() if body.winner >= 0 else None,
        "players": [
            {
                "player": p.hex(),
                "score": s,
                "rejected": r,
                "finished": f,
                "forfeit": body.forfeited(i) or None,
            }
            for i, (p, s, r, f) in enumerate(
                zip(body.players, body.scores, body.rejected, body.finished, strict=True)
            )
        ],
        "issued_at": record.issued_at,
    }


def run_play(args: argparse.Namespace) -> int:
    """Attest, play with the bot, print the signed outcome; exit 1 if none arrived."""
    key = load_key_of(args)
    if not 1_000 <= args.duration_ms <= 600_000:
        raise UsageError("--duration-ms must be between 1000 and 600000")

    async def go() -> dict[str, Any]:
        # Answering requests lets punches and relayed circuits reach this player.
        async with light_client(args, sessions=True) as node:
            settings = {"seed": args.seed, "duration_ms": args.duration_ms}
            attempts: list[dict[str, Any]] = []
            if args.referee is None:
                ranked = await play_ranked(
                    node,
                    key,
                    network=args.network,
                    match_id=args.match,
                    code_hash=args.code_hash,
                    players=tuple(args.players),
                    map_name=args.map,
                    mode=args.mode,
                    settings=settings,
                    cheat=args.cheat,
                    deadline=args.deadline,
                )
                result = ranked.played
                attempts = [
                    {"match": a.match_id, "referee": a.referee.hex(), "result": a.result}
                    for a in ranked.attempts
                ]
            else:
                result = await play_match(
                    node,
                    key,
                    network=args.network,
                    match_id=args.match,
                    code_hash=args.code_hash,
                    referee=args.referee,
                    players=tuple(args.players),
                    map_name=args.map,
                    mode=args.mode,
                    settings=settings,
                    cheat=args.cheat,
                )
            anon_held = await _anon_tokens(args, node, key, result.outcome)
        doc: dict[str, Any] = {
            "ticks": result.bot.ticks,
            "inputs_sent": result.bot.sent,
            "referee_vote": result.referee_vote,
            "outcome": None if result.outcome is None else _outcome_doc(result.outcome),
            "attempts": attempts,
            "path": result.path,
            "failure": result.failure or None,
        }
        if args.anon_votes:
            doc["anon_votes_held"] = anon_held
        return doc

    doc = asyncio.run(go())
    if args.json:
        print_json(doc)
    elif doc["outcome"] is None:
        sys.stdout.write(f"no outcome; rated the referee {doc['referee_vote']}\n")
    else:
        o = doc["outcome"]
        sys.stdout.write(f"match {o['match']} {o['status']} winner {o['winner']}\n")
        for p in o["players"]:
            lost = f"  forfeit: {p['forfeit']}" if p["forfeit"] else ""
            sys.stdout.write(
                f"  {p['player'][:16]}  score {p['score']:>4}  refused inputs {p['rejected']}"
                f"{lost}\n"
            )
        sys.stdout.write(f"rated the referee {doc['referee_vote']}\n")
    if doc["path"] and not args.json:
        sys.stdout.write(f"session path: {doc['path']}\n")
    if doc["outcome"] is None:
        sys.stderr.write(f"fairdht: {doc['failure'] or 'the referee sent no outcome'}\n")
        return 1
    return 0


async def _anon_tokens(args: argparse.Namespace, node: Any, key: Any, outcome: Any) -> int:
    """With ``--anon-votes``: blind tokens for the default match votes, held in the data dir."""
    from fairdht.errors import FairDHTError  # only this step turns the error into a warning

    if not args.anon_votes or outcome is None:
        return 0
    try:
        return await hold_match_votes(
            node, key, network=args.network, outcome=outcome, data_dir=data_dir_of(args)
        )
    except FairDHTError as exc:
        # The match itself went fine: say why no token came, and keep its outcome.
        sys.stderr.write(f"fairdht: no anonymous-vote tokens: {exc}\n")
        return 0


def run_serve(args: argparse.Namespace) -> int:
    """Serve matches until a signal (or ``--matches`` N are done); withdraw the offer."""
    key = load_key_of(args)
    if not 10 <= args.tick_ms <= 1000:
        raise UsageError("--tick-ms must be between 10 and 1000")

    async def go() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        with tempfile.TemporaryDirectory(prefix="fairdht-serve-") as tmp:
            async with light_client(args, key=key, sessions=True) as node:
                if args.bundle is not None:
                    bundle_dir = Path(args.bundle)
                    digest = code_hash(bundle_dir)
                    if digest not in args.trust_code:
                        raise UsageError(
                            f"refusing to run untrusted code {digest.hex()}: "
                            f"pass --trust-code {digest.hex()} if you trust this bundle"
                        )
                else:
                    digest = args.code_hash
                    trust = TrustStore(data_dir_of(args) / _TRUST_FILE)
                    trusted = trust.keys(args.network, "content")
                    if not trusted and digest not in args.trust_code:
                        raise UsageError(
                            "no content signer is trusted: run "
                            f"`fairdht trust add KEY --network {args.network} --role content`"
                        )
                    bundle = await fetch_bundle(node.get, args.network, digest, trusted=trusted)
                    bundle_dir = Path(tmp) / "bundle"
                    write_bundle(bundle, bundle_dir)
                service = RefereeService(
                    key,
                    node,
                    network=args.network,
                    bundle_dir=bundle_dir,
                    code_hash=digest,
                    game=args.game,
                    cluster=tuple(args.players),
                    capacity=args.capacity,
                    endpoint=args.endpoint,
                    tick_ms=args.tick_ms,
                    via=tuple((e.host, e.port) for e in args.via),
                )
                # Default: QUIC on the light client's own UDP socket (docs/nat.md).
                if args.listen is None:
                    host, port = await service.start()
                else:
                    host, port = await service.start(args.listen[0], args.listen[1])
                start = {
                    "referee": key.public_key.hex(),
                    "code_hash": digest.hex(),
                    "listen": f"{host}:{port}",
                    "endpoint": service.offer.endpoint if service.offer else None,
                }
                if args.json:
                    sys.stdout.write(json.dumps(start, sort_keys=True) + "\n")
                else:
                    sys.stdout.write(
                        f"referee {start['referee']} serving {start['code_hash']} on {host}:{port}\n"
                    )
                sys.stdout.flush()
                done = 0
                try:
                    while not stop.is_set():
                        waiter = asyncio.ensure_future(service.finished.get())
                        stopper = asyncio.ensure_future(stop.wait())
                        finished, _ = await asyncio.wait(
                            {waiter, stopper}, return_when=asyncio.FIRST_COMPLETED
                        )
                        stopper.cancel()
                        if waiter not in finished:
                            waiter.cancel()
                            break
                        served = waiter.result()
                        done += 1
                        if served.outcome is not None:
                            doc = _outcome_doc(served.outcome)
                            doc["votes"] = [
                                {"subject": s.hex(), "action": a} for s, a in served.votes
                            ]
                            if args.json:
                                sys.stdout.write(json.dumps(doc, sort_keys=True) + "\n")
                            else:
                                sys.stdout.write(
                                    f"match {doc['match']} {doc['status']}: winner {doc['winner']}, "
                                    f"votes {len(doc['votes'])}\n"
                                )
                            sys.stdout.flush()
                        if args.matches and done >= args.matches:
                            break
                finally:
                    await service.stop()
        return 0

    return asyncio.run(go())
