"""Argument helpers shared by every command: endpoints, ``--json``, ``--data-dir``, ``--key``."""

from __future__ import annotations

import argparse
import ipaddress
import json
import re
import sys
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from fairdht.identity import SigningKey, default_data_dir, load_key

if TYPE_CHECKING:
    from fairdht.dht import DHTNode

__all__ = [
    "KEY_FILE_NAME",
    "Endpoint",
    "add_bootstrap_option",
    "add_data_dir_option",
    "add_json_option",
    "add_key_option",
    "bind_address",
    "bootstrap_endpoint",
    "data_dir_of",
    "key_path_of",
    "light_client",
    "listen_endpoint",
    "load_key_of",
    "parse_endpoint",
    "print_json",
]

KEY_FILE_NAME = "node.key"

# RFC 1123 host names: dot-separated labels of letters, digits and inner hyphens.
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


class Endpoint(NamedTuple):
    """A host (IP literal, or a name resolved when used) and a UDP or TCP port."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def _is_hostname(host: str) -> bool:
    labels = host.rstrip(".").split(".")
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        return False
    # An all-numeric dotted name is a mistyped IPv4 address (e.g. 300.1.1.1), not a host.
    return not all(label.isdigit() for label in labels)


def parse_endpoint(
    text: str, *, what: str, allow_port_zero: bool = False, allow_hostname: bool = True
) -> Endpoint:
    """Parse ``HOST:PORT`` or ``[IPv6]:PORT``; raise ArgumentTypeError with one sentence."""
    text = text.strip()
    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
        if not sep:
            raise argparse.ArgumentTypeError(f"{what} {text!r} must be written [IPv6]:PORT")
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host:
            raise argparse.ArgumentTypeError(f"{what} {text!r} must be HOST:PORT")
    lowest = 0 if allow_port_zero else 1
    if not port_text.isdigit() or not lowest <= int(port_text) <= 65535:
        raise argparse.ArgumentTypeError(
            f"{what} {text!r} has an invalid port (expected {lowest} to 65535)"
        )
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if text.startswith("[") or not allow_hostname or not _is_hostname(host):
            kind = "an IP address" if not allow_hostname else "an IP address or host name"
            raise argparse.ArgumentTypeError(
                f"{what} {text!r} does not start with {kind}"
            ) from None
        return Endpoint(host.rstrip("."), int(port_text))
    if (ip.version == 6) != text.startswith("["):
        raise argparse.ArgumentTypeError(f"{what} {text!r}: write IPv6 addresses as [ADDR]:PORT")
    return Endpoint(ip.compressed, int(port_text))


def bootstrap_endpoint(text: str) -> Endpoint:
    """argparse type of ``--bootstrap``: an entry node's ``HOST:PORT`` (port 1-65535)."""
    return parse_endpoint(text, what="bootstrap address")


def listen_endpoint(text: str) -> Endpoint:
    """argparse type of a local bind address ``IP:PORT`` (port 0 picks a free port)."""
    return parse_endpoint(text, what="listen address", allow_port_zero=True, allow_hostname=False)


def bind_address(text: str) -> str:
    """argparse type of ``--bind``: a local IP literal."""
    try:
        return ipaddress.ip_address(text.strip().strip("[]")).compressed
    except ValueError:
        raise argparse.ArgumentTypeError(f"--bind {text!r} is not an IP address") from None


def add_bootstrap_option(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    """Add the repeatable ``--bootstrap HOST:PORT`` option (into ``args.bootstrap``) and
    ``--bind IP``, the local address of the light client's socket."""
    parser.add_argument(
        "--bootstrap",
        metavar="HOST:PORT",
        type=bootstrap_endpoint,
        action="append",
        default=[],
        required=required,
        help="entry node to join through; repeat for several",
    )
    parser.add_argument(
        "--bind",
        metavar="IP",
        type=bind_address,
        default=None,
        help="local address to send from (default: any, chosen per destination)",
    )


def light_client(args: argparse.Namespace, **options: Any) -> AbstractAsyncContextManager[DHTNode]:
    """A light client joined through ``--bootstrap`` from ``--bind`` (fairdht.dht.connect)."""
    from fairdht.dht import connect  # the DHT stack loads only for commands that use it

    bootstrap = [(e.host, e.port) for e in getattr(args, "bootstrap", [])]
    return connect(bootstrap, bind=getattr(args, "bind", None), **options)


def add_json_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--json``: print one JSON document instead of text lines."""
    parser.add_argument("--json", action="store_true", help="print one JSON document")


def add_data_dir_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--data-dir DIR`` (default: the XDG data dir, see ``data_dir_of``)."""
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        type=Path,
        default=None,
        help="node state directory (default: $XDG_DATA_HOME/fairdht)",
    )


def add_key_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--key PATH`` (default: ``node.key`` in the data dir)."""
    parser.add_argument(
        "--key",
        metavar="PATH",
        type=Path,
        default=None,
        help="key file (default: DATA_DIR/node.key)",
    )


def data_dir_of(args: argparse.Namespace) -> Path:
    """The data dir the user chose, or the default one, read when the command runs."""
    chosen: Path | None = getattr(args, "data_dir", None)
    return chosen if chosen is not None else default_data_dir()


def key_path_of(args: argparse.Namespace) -> Path:
    """The key file the user chose, or ``node.key`` in the data dir."""
    chosen: Path | None = getattr(args, "key", None)
    return chosen if chosen is not None else data_dir_of(args) / KEY_FILE_NAME


def load_key_of(args: argparse.Namespace) -> SigningKey:
    """Load the key named by ``--key`` / ``--data-dir``; KeyFileError says what is wrong."""
    return load_key(key_path_of(args))


def print_json(document: Any) -> None:
    """Write one JSON document (sorted keys) and a newline to stdout."""
    sys.stdout.write(json.dumps(document, sort_keys=True) + "\n")
