"""``fairdht node``: run a full node (routing, storage) with an optional local HTTP API."""

from __future__ import annotations

import argparse
import errno
import ipaddress
import logging
from collections.abc import Callable
from typing import Any

from fairdht.cli.common import (
    add_bootstrap_option,
    add_data_dir_option,
    add_key_option,
    data_dir_of,
    listen_endpoint,
    parse_endpoint,
)
from fairdht.errors import BadBody, NetworkError
from fairdht.records.envelope import check_network_name
from fairdht.trust import DEMO_NETWORK

__all__ = ["http_endpoint", "register", "run"]

log = logging.getLogger("fairdht.node")

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def http_endpoint(text: str) -> tuple[str, int]:
    """argparse type of ``--http``: ``IP:PORT``, or just ``PORT`` on 127.0.0.1."""
    if text.strip().isdigit():
        text = f"127.0.0.1:{text.strip()}"
    return tuple(  # type: ignore[return-value]
        parse_endpoint(text, what="HTTP address", allow_port_zero=True, allow_hostname=False)
    )


def _http_host(text: str) -> str:
    """argparse type of ``--http-host``: a host name or IP literal, normalized."""
    from fairdht.api.hosts import check_host_name

    try:
        return check_host_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _max_streams(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 10_000:
        raise argparse.ArgumentTypeError(f"{text!r} must be a whole number from 1 to 10000")
    return int(text)


def _retention(text: str) -> int:
    if not text.isdigit() or int(text) > 365 * 24 * 3600:
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 to 31536000 whole seconds")
    return int(text)


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r} must be between 0 and 3600 seconds")
    return value


def _keepalive_seconds(text: str) -> float:
    # The bounds of fairdht.node.reachability (MIN_KEEPALIVE, MAX_KEEPALIVE), not
    # imported: this module loads without the DHT stack.
    value = _positive_seconds(text)
    if not 1 <= value <= 60:
        raise argparse.ArgumentTypeError(f"{text!r} must be between 1 and 60 seconds")
    return value


def _bounded_int(low: int, high: int, unit: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of {unit}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text!r} must be {low}-{high} {unit}")
        return value

    return parse


def _puzzle_bits(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 32:
        raise argparse.ArgumentTypeError(f"{text!r} must be a whole number from 0 to 32")
    return int(text)


def _network(text: str) -> str:
    try:
        return check_network_name(text)
    except BadBody as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(subparsers: Any) -> None:
    """Add the ``node`` command."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "node", help="run a full node", description="Run a full fairdht node until SIGINT/SIGTERM."
    )
    parser.add_argument(
        "--listen",
        metavar="IP:PORT",
        type=listen_endpoint,
        default=None,
        help="UDP address to listen on (default: 0.0.0.0, or [::] for IPv6 entry nodes, "
        "with a free port); entry nodes want a fixed port, e.g. 0.0.0.0:4000",
    )
    add_bootstrap_option(parser)
    add_data_dir_option(parser)
    add_key_option(parser)
    parser.add_argument(
        "--create-key",
        action="store_true",
        help="create the --key file when it does not exist (default: refuse a missing one)",
    )
    parser.add_argument(
        "--http",
        metavar="IP:PORT",
        type=http_endpoint,
        default=None,
        help="start the local HTTP API here (e.g. 127.0.0.1:8470; port 0 picks one)",
    )
    parser.add_argument(
        "--http-host",
        metavar="NAME",
        type=_http_host,
        action="append",
        default=None,
        help="also answer HTTP requests whose Host is NAME (repeatable); others are refused "
        "(421) against DNS rebinding, except the listen address, localhost on loopback, "
        "and any IP literal when --http is a wildcard address",
    )
    parser.add_argument(
        "--http-max-streams",
        metavar="N",
        type=_max_streams,
        default=64,
        help="most /api/events streams open at once; more are answered 503 (default 64)",
    )
    parser.add_argument(
        "--http-max-streams-per-client",
        metavar="N",
        type=_max_streams,
        default=16,
        help="most /api/events streams one client (IP, or IPv6 /64) holds; more from it "
        "are answered 503 while other clients get theirs (default 16)",
    )
    parser.add_argument(
        "--rpc-timeout",
        metavar="S",
        type=_positive_seconds,
        default=1.0,
        help="seconds to wait for a peer's reply (default 1)",
    )
    parser.add_argument(
        "--retry-cap",
        metavar="S",
        type=_positive_seconds,
        default=60.0,
        help="longest wait between bootstrap attempts (default 60)",
    )
    parser.add_argument(
        "--stats-interval",
        metavar="S",
        type=_positive_seconds,
        default=60.0,
        help="seconds between statistics log lines (default 60)",
    )
    parser.add_argument(
        "--history-retention",
        metavar="S",
        type=_retention,
        default=7 * 24 * 3600,
        help="fold local history commits older than this into their checkpoint (default 7 days)",
    )
    parser.add_argument(
        "--puzzle-bits",
        metavar="D",
        type=_puzzle_bits,
        default=0,
        help="the network's id puzzle difficulty (S/Kademlia): refuse contacts whose id fails "
        "it; a new key is made to pass it (default 0: off)",
    )
    parser.add_argument(
        "--no-local-exemption",
        dest="local_exemption",
        action="store_false",
        help="apply the IP-diversity limits to peers on this machine and its LANs too "
        "(default: they are exempt, as on libp2p's LAN DHT)",
    )
    parser.add_argument(
        "--follow",
        metavar="NET",
        type=_network,
        action="append",
        default=None,
        help="keep a replica and history of this network's server list (repeatable; default demo)",
    )
    parser.add_argument(
        "--reachability",
        choices=("check", "assume-public"),
        default="check",
        help="check (default): join as a client until peers' dial-backs prove this node "
        "reachable (behind a NAT it stays one); assume-public: enter routing tables at "
        "once (an entry node with a known public address)",
    )
    parser.add_argument(
        "--reachability-interval",
        metavar="S",
        type=_positive_seconds,
        default=120.0,
        help="seconds between reachability checks (default 120)",
    )
    parser.add_argument(
        "--keepalive",
        metavar="S",
        type=_keepalive_seconds,
        default=15.0,
        help="behind a NAT: seconds between keep-alives that renew the rendezvous "
        "registrations and keep the NAT's mapping open (1-60, default 15: below the "
        "30 s UDP timeout of many home routers)",
    )
    parser.add_argument(
        "--relay",
        choices=("on", "off"),
        default="on",
        help="on (default): relay circuits for nodes behind NAT that registered here, "
        "within strict limits (docs/nat.md); off: refuse to relay",
    )
    parser.add_argument(
        "--relay-circuit-mib",
        metavar="N",
        type=_bounded_int(1, 16, "MiB"),
        default=16,
        help="bytes one relayed circuit may carry, in MiB (1-16, default 16: a 10-minute match)",
    )
    parser.add_argument(
        "--relay-circuit-minutes",
        metavar="N",
        type=_bounded_int(1, 15, "minutes"),
        default=15,
        help="how long one relayed circuit may last (1-15, default 15)",
    )
    parser.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        type=str.upper,
        default="INFO",
        help="log verbosity (default INFO)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the node until a signal; 0 after a clean shutdown."""
    # Imported here so `fairdht keygen` and `fairdht status` start without the DHT stack.
    from fairdht.api.server import ApiServer
    from fairdht.node.config import NodeConfig
    from fairdht.node.process import run_main, run_until_signalled, setup_logging
    from fairdht.node.runner import NodeRunner

    setup_logging(args.log_level)
    config = NodeConfig(
        data_dir=data_dir_of(args),
        listen=None if args.listen is None else tuple(args.listen),
        bootstrap=tuple(tuple(e) for e in args.bootstrap),
        http=args.http,
        http_hosts=tuple(dict.fromkeys(args.http_host or ())),
        http_max_streams=args.http_max_streams,
        http_max_streams_per_client=args.http_max_streams_per_client,
        key_path=args.key,
        create_key=args.create_key,
        rpc_timeout=args.rpc_timeout,
        retry_base=min(1.0, args.retry_cap),
        retry_cap=args.retry_cap,
        stats_interval=args.stats_interval,
        history_retention=args.history_retention,
        follow=tuple(dict.fromkeys(args.follow or [DEMO_NETWORK])),
        puzzle_bits=args.puzzle_bits,
        local_exemption=args.local_exemption,
        reachability_check=args.reachability == "check",
        reachability_interval=args.reachability_interval,
        keepalive=args.keepalive,
        relay=args.relay == "on",
        relay_circuit_mib=args.relay_circuit_mib,
        relay_circuit_minutes=args.relay_circuit_minutes,
    )
    if not config.bootstrap:
        log.info("no --bootstrap given: starting as the first node of a network")
    frontend = None
    if config.http is not None:
        if not ipaddress.ip_address(config.http[0]).is_loopback:
            log.warning("the HTTP API listens on %s, beyond loopback", config.http[0])
        frontend = ApiServer(
            *config.http,
            names=config.http_hosts,
            max_streams=config.http_max_streams,
            max_streams_per_client=config.http_max_streams_per_client,
        )
    runner = NodeRunner(config, frontend=frontend)
    try:
        run_main(run_until_signalled(runner))
    except OSError as exc:
        # The UDP socket reports its own errors (fairdht.dht); an OSError here is the API's.
        where = f"{config.http[0]}:{config.http[1]}" if config.http else "the node"
        if exc.errno == errno.EADDRINUSE:
            raise NetworkError(f"{where} is already in use (the HTTP API's --http)") from None
        raise NetworkError(f"cannot start the HTTP API on {where}: {exc.strerror}") from None
    return 0
