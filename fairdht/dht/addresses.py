"""Which local address a socket binds, and which address a service advertises.

A socket bound to 127.0.0.1 reaches no other machine, so nothing here defaults to
loopback: a light client binds the wildcard address of its entry nodes' family (the
kernel then picks the source address per destination, RFC 6724 for IPv6), and a
service listening on a wildcard address advertises the source address its host uses
towards the network's entry node (what a peer there would see). docs/protocol.md,
"Addresses", states the rules for other implementations.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Sequence

from fairdht.errors import NoPeersError, UsageError

__all__ = [
    "Address",
    "advertised_host",
    "bind_host_for",
    "check_reach",
    "family_of",
    "format_address",
    "resolve",
    "resolve_all",
    "source_address_toward",
    "wildcard_for",
]

LOG = logging.getLogger("fairdht.dht")

Address = tuple[str, int]

_WILDCARD = {4: "0.0.0.0", 6: "::"}


def family_of(host: str) -> int:
    """4 or 6 for an IP literal; ValueError otherwise."""
    return ipaddress.ip_address(host).version


def wildcard_for(version: int) -> str:
    """The wildcard (any-address) literal of IP ``version``."""
    return _WILDCARD[version]


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_unspecified(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


async def resolve(addr: Address, *, version: int | None = None) -> Address | None:
    """``addr`` with its host as a canonical IP literal (names resolved now), or None.

    ``version`` (4 or 6) keeps only that family; None takes the resolver's first answer.
    """
    host, port = addr
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise UsageError(f"bad port in address {addr!r}")
    with contextlib.suppress(ValueError):
        ip = ipaddress.ip_address(host)
        return (ip.compressed, port) if version in (None, ip.version) else None
    family = {4: socket.AF_INET, 6: socket.AF_INET6}.get(version or 0, socket.AF_UNSPEC)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, family=family, type=socket.SOCK_DGRAM
        )
    except OSError as exc:
        LOG.warning("cannot resolve host %s: %s", host, exc)
        return None
    for fam, _, _, _, sockaddr in infos:
        if fam in (socket.AF_INET, socket.AF_INET6):
            return (ipaddress.ip_address(sockaddr[0]).compressed, int(sockaddr[1]))
    return None


async def resolve_all(addrs: Sequence[Address], *, version: int | None = None) -> list[Address]:
    """Resolve each of ``addrs`` (see ``resolve``), dropping the ones that fail."""
    found = [await resolve(a, version=version) for a in addrs]
    return [a for a in found if a is not None]


def check_reach(bind_host: str, targets: Sequence[Address]) -> None:
    """UsageError with one sentence when a socket on ``bind_host`` cannot reach ``targets``.

    A socket bound to one IP family talks only to that family, and one bound to a
    loopback address talks only to loopback.
    """
    if not targets:
        return
    if not any(_same_family(bind_host, t[0]) for t in targets):
        raise UsageError(
            f"a socket on {bind_host} cannot reach {format_address(targets[0])}: "
            "it is of the other IP family"
        )
    if _is_loopback(bind_host) and not any(_is_loopback(t[0]) for t in targets):
        raise UsageError(
            f"a socket on the loopback address {bind_host} cannot reach {format_address(targets[0])} "
            "on another machine; listen on 0.0.0.0 (or [::]) or on this host's own address"
        )


def _same_family(a: str, b: str) -> bool:
    try:
        return family_of(a) == family_of(b)
    except ValueError:
        return False


def format_address(addr: Address) -> str:
    """``HOST:PORT``, with brackets around an IPv6 host."""
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def bind_host_for(targets: Sequence[Address], bind: str | None) -> tuple[str, list[Address]]:
    """The host a client socket binds and the ``targets`` it can reach from there.

    ``bind`` (an IP literal) is checked against the targets; None picks the wildcard
    of the first target's family. NoPeersError when no target is left.
    """
    if bind is not None:
        version = family_of(bind)
        check_reach(bind, targets)
        host = bind
    elif targets:
        version = family_of(targets[0][0])
        host = wildcard_for(version)
    else:
        return wildcard_for(4), []
    usable = [t for t in targets if family_of(t[0]) == version]
    if len(usable) < len(targets):
        LOG.info("skipping %d entry nodes of the other IP family", len(targets) - len(usable))
    if not usable:
        raise NoPeersError(f"no entry node has an IPv{version} address reachable from {host}")
    return host, usable


def source_address_toward(target: Address) -> str | None:
    """The local IP this host would send from to reach ``target`` (no packet is sent).

    ``connect`` on a UDP socket only asks the kernel for a route; ``getsockname`` then
    names the source address of that route. None when there is no route.
    """
    host, port = target
    version = family_of(host)
    family = socket.AF_INET if version == 4 else socket.AF_INET6
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((host, port))
        except OSError:
            return None
        return str(probe.getsockname()[0])


def advertised_host(listen_host: str, entries: Sequence[Address]) -> str:
    """The host a service listening on ``listen_host`` tells others to connect to.

    A specific address is advertised as it is (after ``check_reach``). A wildcard is
    replaced by the source address towards the first entry node of its family, which a
    peer on the entry node's network can reach. UsageError when there is none.
    """
    if not _is_unspecified(listen_host):
        check_reach(listen_host, entries)
        return listen_host
    version = family_of(listen_host)
    for entry in entries:
        if family_of(entry[0]) == version:
            source = source_address_toward(entry)
            if source is not None and not _is_unspecified(source):
                return ipaddress.ip_address(source).compressed
    raise UsageError(
        f"listening on {listen_host} without --endpoint: no IPv{version} entry node to "
        "learn this host's address from; give --endpoint IP:PORT that players can reach"
    )
