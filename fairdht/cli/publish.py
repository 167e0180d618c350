"""``fairdht publish`` (and ``scripts/publish_server.py``): announce a game server.

Checks every argument before touching the network (bad input: one sentence, exit 2,
nothing published), joins as a light client, puts the signed announcement and says
how many replicas accepted it. Without ``--once`` it re-announces every ``--every``
seconds with a newer seq until Ctrl-C (or SIGTERM), then publishes a signed withdrawal,
and meanwhile answers reachability probes on the announced UDP port (docs/serverlist.md
§1.11) unless ``--no-probe-answer``; when the port is taken (often by the game server
itself) it says so: the game server must then answer probes itself.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fairdht.cli.common import (
    add_bootstrap_option,
    add_json_option,
    light_client,
    load_key_of,
    print_json,
)
from fairdht.dht import PutResult
from fairdht.errors import FairDHTError, KeyFileError, NetworkError, UsageError
from fairdht.identity.keys import SigningKey
from fairdht.node.prober import ProbeAnswerer
from fairdht.records.envelope import Record
from fairdht.records.kinds.server import ServerAnnouncement
from fairdht.serverlist.announce import (
    ANNOUNCE_TTL,
    REANNOUNCE_EVERY,
    announcement_record,
    make_announcement,
    withdrawal_record,
)

__all__ = ["add_publish_arguments", "main", "register", "run_publish", "start_answerer"]


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError("a time interval must be between 0 and 86400 seconds")
    return value


def add_publish_arguments(parser: argparse.ArgumentParser) -> None:
    """The publisher's options, shared by ``fairdht publish`` and the script."""
    parser.add_argument("--key", metavar="PATH", type=Path, required=True, help="server key file")
    add_bootstrap_option(parser, required=True)
    parser.add_argument("--address", required=True, help="the game server's IP:PORT or [IPv6]:PORT")
    parser.add_argument("--name", required=True, help="server name (1-64 characters)")
    parser.add_argument("--network", required=True, metavar="NET", help="game/community network")
    parser.add_argument("--mode", default="", help="game mode (at most 32 characters)")
    parser.add_argument("--map", default="", help="current map (at most 32 characters)")
    parser.add_argument("--players", type=_int, default=0, help="players now (0-4096)")
    parser.add_argument("--max-players", type=_int, default=0, help="slots (0-4096, 0: not said)")
    parser.add_argument("--game-version", default="", help="game version (at most 32 characters)")
    parser.add_argument("--tags", default="", help="comma-separated tags (at most 8 of 1-16 chars)")
    parser.add_argument("--once", action="store_true", help="announce once and exit")
    parser.add_argument(
        "--no-probe-answer",
        action="store_true",
        help="do not answer reachability probes on the announced UDP port "
        "(the game server answers them itself)",
    )
    parser.add_argument(
        "--ttl",
        type=_int,
        default=ANNOUNCE_TTL,
        help=f"record lifetime in s (default {ANNOUNCE_TTL})",
    )
    parser.add_argument(
        "--every",
        type=_seconds,
        default=None,
        help=f"re-announce interval in s (default {REANNOUNCE_EVERY:.0f}, at most TTL/3)",
    )
    add_json_option(parser)


def register(subparsers: Any) -> None:
    """Add the ``publish`` command."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "publish", help="announce a game server and keep it listed"
    )
    add_publish_arguments(parser)
    parser.set_defaults(func=run_publish)


def _say(args: argparse.Namespace, event: str, result: PutResult, body: ServerAnnouncement) -> None:
    if args.json:
        print_json(
            {"event": event, "address": body.address, "network": args.network,
             "accepted": result.accepted, "asked": result.asked}
        )  # fmt: skip
    else:
        print(
            f"{event} {body.name!r} at {body.address} on {args.network}: "
            f"accepted by {result.accepted} of {result.asked} replicas",
            flush=True,
        )


def _prepare(args: argparse.Namespace) -> tuple[SigningKey, ServerAnnouncement, Record, float]:
    tags = [t.strip() for t in args.tags.split(",") if t.strip()] if args.tags else []
    body = make_announcement(
        address=args.address,
        name=args.name,
        mode=args.mode,
        map=args.map,
        players=args.players,
        max_players=args.max_players,
        game_version=args.game_version,
        tags=tags,
    )
    if not 10 <= args.ttl <= ANNOUNCE_TTL:
        raise UsageError(f"--ttl must be between 10 and {ANNOUNCE_TTL} seconds")
    every = args.every if args.every is not None else min(REANNOUNCE_EVERY, args.ttl / 3)
    if every > args.ttl / 2:
        raise UsageError("--every must be at most half of --ttl, or the server would drop out")
    key = load_key_of(args)
    # Sign once now so every record rule is checked before the network is touched.
    first = announcement_record(key, args.network, body, now=time.time(), ttl=args.ttl)
    return key, body, first, every


def _warn(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


_SELF_ANSWER = (
    "; players' nodes will list it as unproven unless the game server answers fairdht "
    "probes on that port itself (docs/serverlist.md, section 1.11; Python: "
    "fairdht.serverlist.probe.ProbeResponder)"
)


async def start_answerer(key: SigningKey, address: str) -> ProbeAnswerer | None:
    """Answer probes on the announced port; warn and return None when that is impossible."""
    answerer = ProbeAnswerer(key, address)
    port = address.rsplit(":", 1)[1]
    try:
        bound = await answerer.start()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            _warn(f"warning: UDP port {port} is taken, probably by the game server{_SELF_ANSWER}")
            return None
        if exc.errno != errno.EADDRNOTAVAIL:
            _warn(f"warning: cannot bind UDP port {port}: {exc.strerror}{_SELF_ANSWER}")
            return None
        # The announced IP is not on this host (NAT): listen on every address instead.
        wildcard = "::" if address.startswith("[") else "0.0.0.0"
        try:
            bound = await answerer.start(wildcard)
        except OSError as exc2:
            _warn(f"warning: cannot bind UDP port {port}: {exc2.strerror}{_SELF_ANSWER}")
            return None
    _warn(f"answering reachability probes on udp {bound[0]}:{bound[1]}")
    return answerer


async def _publish(args: argparse.Namespace) -> int:
    key, body, first, every = _prepare(args)
    answerer = None
    if not args.once and not args.no_probe_answer:
        answerer = await start_answerer(key, body.address)
    try:
        return await _announce(args, key, body, first, every)
    finally:
        if answerer is not None:
            await answerer.close()


async def _announce(
    args: argparse.Namespace,
    key: SigningKey,
    body: ServerAnnouncement,
    first: Record,
    every: float,
) -> int:
    async with light_client(args) as node:
        result = await node.put(first)
        _say(args, "announced", result, body)
        if args.once:
            if not args.no_probe_answer:
                _warn(f"note: with --once nothing answers probes for {body.address}{_SELF_ANSWER}")
            return 0
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        waiter = asyncio.ensure_future(stop.wait())
        try:
            while True:
                done, _ = await asyncio.wait({waiter}, timeout=every)
                if done:
                    break
                record = announcement_record(key, args.network, body, now=time.time(), ttl=args.ttl)
                try:
                    _say(args, "re-announced", await node.put(record), body)
                except NetworkError as exc:  # keep trying: the network may come back
                    print(f"re-announce failed: {exc}", file=sys.stderr, flush=True)
        finally:
            waiter.cancel()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        tomb = withdrawal_record(key, args.network, body.address, now=time.time(), ttl=args.ttl)
        _say(args, "withdrawn", await node.put(tomb), body)
    return 0


def run_publish(args: argparse.Namespace) -> int:
    """Announce (and keep alive) a server; exit 2 on bad input, 1 on network failure."""
    return asyncio.run(_publish(args))


class _ScriptParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: {message}\n")
        raise SystemExit(2)


def main(argv: Sequence[str] | None = None, *, prog: str = "publish_server.py") -> int:
    """Entry point of ``scripts/publish_server.py``: the same code as ``fairdht publish``."""
    parser = _ScriptParser(prog=prog, description="Announce a game server on a fairdht network.")
    add_publish_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_publish(args)
    except KeyboardInterrupt:
        return 130
    except (UsageError, KeyFileError) as exc:
        sys.stderr.write(f"{prog}: {exc}\n")
        return 2
    except FairDHTError as exc:
        sys.stderr.write(f"{prog}: {exc}\n")
        return 1
