"""Reaching a session peer: direct, else punched, else relayed, tried in that order.

A peer with a public address is dialled there (``direct``). A peer behind NAT names
the rendezvous/relay nodes it registered at (its offer's ``via`` endpoint, docs/protocol.md
"Session transport"); the dialler first asks each to coordinate a hole punch from the
DHT socket (``punched``: RFC 5128 §3.3, libp2p DCUtR) and then to open a relay circuit
(``relayed``: libp2p circuit relay v2). Punched and relayed sessions reach QUIC as
``Via(peer key)``, so when the path dies mid-match the endpoint asks the ``reroute`` made
here for the next relay or a punch, and the same QUIC connection carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from fairdht.dht.punch import PunchProtocol
from fairdht.dht.relay import Circuit, RelayProtocol
from fairdht.dht.rpc import Address, HardenedRPCProtocol
from fairdht.errors import NetworkError
from fairdht.transport.endpoint import QuicEndpoint, Route, Via
from fairdht.transport.stream import Stream

__all__ = ["PATH_KINDS", "Dialer", "Reach", "dial_direct", "dialer_on"]

log = logging.getLogger(__name__)

PATH_KINDS: Final = ("direct", "punched", "relayed")
# How long a punch may take to come back (the rendezvous forwards the offer first).
PUNCH_WAIT: Final = 2.0
# The QUIC handshake over a punched or relayed path.
HANDSHAKE_TIMEOUT: Final = 5.0


@dataclass(frozen=True, slots=True)
class Reach:
    """How to reach a session peer: its key, a direct address, or the nodes it registered at."""

    peer: bytes
    direct: Address | None = None
    via: tuple[Address, ...] = ()


async def dial_direct(address: Address, *, timeout: float = 10.0) -> Stream:
    """A stream to ``address`` from a UDP socket of its own (closed with the stream)."""
    endpoint = await QuicEndpoint.bind("::" if ":" in address[0] else "0.0.0.0", 0)
    try:
        stream = await endpoint.open_stream(address, path="direct", timeout=timeout)
    except BaseException:
        await endpoint.close()
        raise
    stream.after_close.append(endpoint.close)
    return stream


@contextlib.asynccontextmanager
async def dialer_on(proto: HardenedRPCProtocol, **options: Any) -> AsyncIterator[Dialer]:
    """A dialer on the DHT socket of ``proto`` (its endpoint, made for this block if none)."""
    endpoint = QuicEndpoint.of(proto)
    if endpoint is not None:
        yield Dialer(endpoint, proto)
        return
    endpoint = QuicEndpoint.on_dht(proto, **options)
    try:
        yield Dialer(endpoint, proto)
    finally:
        await endpoint.close()


class Dialer:
    """Opens session streams from one DHT node's socket along the first path that works."""

    def __init__(
        self,
        endpoint: QuicEndpoint,
        proto: HardenedRPCProtocol,
        *,
        punch_wait: float = PUNCH_WAIT,
        punch: bool = True,
    ) -> None:
        self.endpoint = endpoint
        self.proto = proto
        self.punch_wait = punch_wait
        # False: go straight to relays (a peer known to be behind a symmetric NAT).
        self.punch = punch
        # What the last ``open`` tried, in order: (path kind, where, result).
        self.tried: list[tuple[str, str, str]] = []

    async def open(self, reach: Reach, *, timeout: float = 10.0) -> Stream:
        """A stream to ``reach.peer``; NetworkError naming each path tried if none works."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        stream = await self._open(reach, timeout)
        stream.opened_in = loop.time() - started
        return stream

    async def _open(self, reach: Reach, timeout: float) -> Stream:
        self.tried = []
        if reach.direct is not None:
            try:
                return await self.endpoint.open_stream(reach.direct, path="direct", timeout=timeout)
            except (TimeoutError, ConnectionError, OSError):
                self.tried.append(("direct", _fmt(reach.direct), "no answer"))
        if await self._punch(reach, reach.via) or await self._relay(reach, reach.via):
            kind = self.endpoint.routes[reach.peer].kind
            try:
                return await self.endpoint.open_stream(
                    Via(reach.peer), path=kind, timeout=HANDSHAKE_TIMEOUT
                )
            except (TimeoutError, ConnectionError, OSError):
                self.tried.append((kind, "quic", "no handshake"))
        raise NetworkError(
            f"cannot reach {reach.peer.hex()[:16]}: "
            + ("; ".join(f"{k} {w}: {r}" for k, w, r in self.tried) or "no address to try")
        )

    async def _punch(self, reach: Reach, nodes: tuple[Address, ...]) -> bool:
        proto = self.proto
        if not self.punch or not isinstance(proto, PunchProtocol):
            return False
        for node in nodes:
            got = await proto.connect_via(node, reach.peer, wait=self.punch_wait)
            if isinstance(got, str):
                self.tried.append(("punched", _fmt(node), got))
                if got == "no_punch":
                    # The offer went through and the NATs still kept the punches out: the
                    # NATs decide that, not the rendezvous node, so another would not help.
                    return False
                continue
            address: Address = (got[0], got[1])

            def send(data: bytes, address: Address = address) -> None:
                proto.send_datagram(data, address)

            self.endpoint.set_route(
                reach.peer, Route("punched", send, address, reroute=self._reroute(reach, None))
            )
            return True
        return False

    async def _relay(self, reach: Reach, nodes: tuple[Address, ...]) -> bool:
        proto = self.proto
        if not isinstance(proto, RelayProtocol):
            return False
        for node in nodes:
            circuit = await proto.open_relay(node, reach.peer)
            if not isinstance(circuit, Circuit):
                self.tried.append(("relayed", _fmt(node), circuit))
                continue
            circuit.on_payload = functools.partial(self.endpoint.deliver_via, reach.peer)
            self.endpoint.set_route(
                reach.peer,
                Route(
                    "relayed",
                    circuit.send,
                    reroute=self._reroute(reach, node),
                    close=circuit.close,
                ),
            )
            return True
        return False

    def _reroute(self, reach: Reach, dead: Address | None) -> Callable[[], Awaitable[bool]]:
        """The fallback of a path through ``dead``: the other relays, then a punch."""

        async def reroute() -> bool:
            others = tuple(n for n in reach.via if n != dead)
            found = await self._relay(reach, others) or await self._punch(reach, reach.via)
            if found:
                log.info("session to %s rerouted", reach.peer.hex()[:16])
            return found

        return reroute


def _fmt(address: Address) -> str:
    return f"[{address[0]}]:{address[1]}" if ":" in address[0] else f"{address[0]}:{address[1]}"
