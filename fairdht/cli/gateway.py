"""``fairdht gateway``: serve the dpmaster and Cube 2 master protocols from a fairdht network.

Game servers keep ``sv_master1`` (Quake III family) or ``mastername`` (Sauerbraten)
pointed at the gateway; it proves their addresses, announces them on fairdht under
keys it derives (docs/gateway.md) and answers old clients' list queries from the
fairdht list. Listens on 127.0.0.1 unless told otherwise. Runs until Ctrl-C/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from typing import Any

from fairdht.cli.common import (
    add_bootstrap_option,
    add_data_dir_option,
    add_key_option,
    data_dir_of,
    key_path_of,
    listen_endpoint,
    load_key_of,
)
from fairdht.errors import UsageError
from fairdht.gateway import ApiSource, GameMap, Gateway, GatewayConfig, LightClientSource
from fairdht.gateway.games import DEFAULT_GAMES, default_network, parse_game_option

__all__ = ["register", "run_gateway"]


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 1 <= value <= 900:
        raise argparse.ArgumentTypeError("the refresh interval must be between 1 and 900 seconds")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= 256:
        raise argparse.ArgumentTypeError("the count must be between 1 and 256")
    return value


def register(subparsers: Any) -> None:
    """Add the ``gateway`` command."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "gateway", help="serve the dpmaster and Cube 2 master protocols from fairdht"
    )
    add_bootstrap_option(parser, required=True)
    add_data_dir_option(parser)
    add_key_option(parser)
    parser.add_argument(
        "--dpmaster", type=listen_endpoint, default=listen_endpoint("127.0.0.1:27950"),
        metavar="IP:PORT", help="UDP address of the dpmaster face (default 127.0.0.1:27950)",
    )  # fmt: skip
    parser.add_argument(
        "--cube2", type=listen_endpoint, default=listen_endpoint("127.0.0.1:28787"),
        metavar="IP:PORT", help="TCP address of the Cube 2 face (default 127.0.0.1:28787)",
    )  # fmt: skip
    parser.add_argument("--no-dpmaster", action="store_true", help="do not serve dpmaster")
    parser.add_argument("--no-cube2", action="store_true", help="do not serve Cube 2")
    parser.add_argument(
        "--game", action="append", default=[], metavar="NAME[=NETWORK]",
        help="serve this game (repeatable; default: " + ", ".join(
            f"{g}={default_network(g)}" for g in DEFAULT_GAMES) + ")",
    )  # fmt: skip
    parser.add_argument(
        "--api", metavar="URL", default=None,
        help="read lists from the local node's API (its replica) instead of the DHT",
    )  # fmt: skip
    parser.add_argument(
        "--refresh", type=_seconds, default=30.0, metavar="S",
        help="re-read the lists every S seconds (default 30)",
    )  # fmt: skip
    parser.add_argument(
        "--max-servers",
        type=_count,
        default=256,
        metavar="N",
        help="servers this gateway announces at most (default 256)",
    )
    parser.add_argument(
        "--per-gateway",
        type=_count,
        default=256,
        metavar="N",
        help="servers listed per delegating gateway (default 256)",
    )
    parser.set_defaults(func=run_gateway)


def _config(args: argparse.Namespace) -> GatewayConfig:
    games = GameMap.of(parse_game_option(g) for g in args.game) if args.game else GameMap.default()
    if args.api is not None and not args.api.startswith(("http://", "https://")):
        raise UsageError(f"API URL {args.api!r} must start with http:// or https://")
    key = load_key_of(args)
    data_dir = data_dir_of(args)
    bootstrap = [(b.host, b.port) for b in args.bootstrap]
    source = (
        ApiSource(args.api)
        if args.api
        else LightClientSource(bootstrap, data_dir, key_path=key_path_of(args))
    )
    return GatewayConfig(
        key=key,
        bootstrap=bootstrap,
        source=source,
        data_dir=data_dir,
        key_path=key_path_of(args),
        games=games,
        dpmaster=None if args.no_dpmaster else tuple(args.dpmaster),
        cube2=None if args.no_cube2 else tuple(args.cube2),
        refresh=args.refresh,
        max_servers=args.max_servers,
        per_gateway=args.per_gateway,
    )


async def _serve(config: GatewayConfig) -> int:
    gateway = Gateway(config)
    await gateway.start()
    where = []
    if config.dpmaster is not None:
        where.append("dpmaster udp {}:{}".format(*gateway.dpmaster_address))
    if gateway.cube is not None:
        where.append("cube2 tcp {}:{}".format(*gateway.cube2_address))
    print(f"gateway {config.key.public_key.hex()} serving " + ", ".join(where), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await gateway.stop()
        print(json.dumps({"stats": gateway.stats()}, sort_keys=True), file=sys.stderr, flush=True)
    return 0


def run_gateway(args: argparse.Namespace) -> int:
    """Run a gateway until a signal; exit 2 on bad input, 1 when no peer answers."""
    config = _config(args)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    return asyncio.run(_serve(config))
