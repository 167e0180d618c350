"""A QUIC endpoint (aioquic) carrying sessions: reliable, ordered streams over UDP.

One endpoint serves a UDP socket: its own (``QuicEndpoint.bind``) or the DHT node's
(``QuicEndpoint.on_dht``), where it takes every datagram whose first byte has QUIC's
fixed bit (0x40) while rpcudp's start with 0x00/0x01 (RFC 9443's demultiplexing). On the
DHT's socket a session uses the NAT mapping that rendezvous registration keeps open and
that punches open (docs/nat.md, "Session transport").

Datagrams are routed by destination connection id to the connection that issued it,
client or server (aioquic's ``QuicServer`` does the same for servers). A new connection
is made only for a client Initial of at least 1,200 bytes (RFC 9000 §14.1), within
``MAX_CONNECTIONS`` and ``PER_SUBNET`` per source /24 (or per relayed peer): 1,000 keys on
one /24 hold 16 connections, never an honest subnet's. Until a client's address is
validated the server sends at most 3x what it received (RFC 9000 §8.1, enforced by
aioquic), the same rule as the DHT's one ``AmplificationBudget``. Anything else that
looks like QUIC but matches no connection is dropped and counted ``quic.dropped.*``.

A peer reached over a punched or relayed path appears to QUIC as ``Via(peer key)``, and
the endpoint's ``Route`` for that key says how datagrams reach it now. A route that
stops answering (the relay died) is probed with a PING and, if still silent, handed to
its ``reroute`` (the next relay or a punch): QUIC sees loss, then the same address again,
and the session goes on. Every connection sends a PING each ``keepalive`` seconds, so
the NAT mappings under it stay open (RFC 4787 REQ-5 allows a mapping to expire after
2 min of silence; RFC 9000 §10.1.2).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Final

from aioquic._buffer import Buffer  # re-exported by aioquic.buffer without __all__
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.quic import events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.packet import QuicPacketType, pull_quic_header

from fairdht.dht.admission import subnet_of
from fairdht.dht.metrics import Metrics
from fairdht.dht.rpc import Address, HardenedRPCProtocol
from fairdht.transport.stream import Stream
from fairdht.transport.tls import ALPN, SERVER_NAME, self_signed

__all__ = [
    "IDLE_TIMEOUT",
    "KEEPALIVE",
    "MAX_CONNECTIONS",
    "PER_SUBNET",
    "QuicEndpoint",
    "QuicSession",
    "Route",
    "StreamHandler",
    "Via",
]

log = logging.getLogger(__name__)

CID_LENGTH: Final = 8
# A PING every 15 s: well inside RFC 4787's 2-minute minimum mapping timeout (REQ-5) and
# the 30 s many home routers use in practice; 40 bytes each way per connection.
KEEPALIVE: Final = 15.0
# A connection with nothing at all for this long is gone (4 missed keep-alives).
IDLE_TIMEOUT: Final = 60.0
MAX_CONNECTIONS: Final = 256
PER_SUBNET: Final = 16
# A route that sent and heard nothing back for this long is probed; silent for as long
# again after the probe, it is dead (a match sends every tick, so 2 s is 20 ticks).
STALL: Final = 2.0
# A server connection whose session ended is closed after this (its last frames and the
# peer's FIN get through first).
CLOSE_GRACE: Final = 2.0
_SMALLEST_INITIAL: Final = 1200
# A connection not handshaken by then is dropped (its share of the limits freed): a
# garbage Initial holds a slot for this long, not for the idle timeout.
HANDSHAKE_TIMEOUT: Final = 10.0
_TICK: Final = 0.25

StreamHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

# The endpoint each DHT socket carries (at most one: it takes all of its QUIC datagrams).
_ON_DHT: weakref.WeakKeyDictionary[HardenedRPCProtocol, QuicEndpoint] = weakref.WeakKeyDictionary()


@dataclass(frozen=True, slots=True)
class Via:
    """The address QUIC sees for a peer reached over a punched or relayed route."""

    peer: bytes


@dataclass(slots=True)
class Route:
    """How datagrams reach a ``Via`` peer now: its kind and a send function."""

    kind: str
    send: Callable[[bytes], object]
    # The punched address the peer's datagrams come from (None when relayed).
    address: Address | None = None
    # Finds another path when this one dies; True when it installed one.
    reroute: Callable[[], Awaitable[bool]] | None = None
    # Frees what the path holds (a relay circuit's slot) once nothing uses it.
    close: Callable[[], object] | None = None
    waiting_since: float | None = None
    probed: bool = False
    rerouting: bool = False
    failure: str = ""


class _Wire:
    """The datagram transport aioquic's protocol writes to: the endpoint's router."""

    def __init__(self, endpoint: QuicEndpoint) -> None:
        self._endpoint = endpoint

    def sendto(self, data: bytes, addr: Any = None) -> None:
        self._endpoint.send(data, addr)

    def close(self) -> None:
        """Nothing to close: the socket belongs to the endpoint."""

    def is_closing(self) -> bool:
        return self._endpoint.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


class QuicSession(QuicConnectionProtocol):
    """One QUIC connection of the endpoint (client or server side)."""

    def __init__(
        self, quic: QuicConnection, endpoint: QuicEndpoint, group: str, *, server: bool
    ) -> None:
        super().__init__(quic, stream_handler=self._on_stream if server else None)
        self.endpoint = endpoint
        self.group = group
        self.server = server
        self.peer: Any = None
        self.streams = 0
        self.terminated = False
        self.handshaken = False
        self.created = asyncio.get_running_loop().time()

    def keep_alive(self) -> None:
        """Send a PING (ack-eliciting, so the peer answers and both NATs see traffic)."""
        if not self.terminated:
            self._quic.send_ping(0)
            self.transmit()

    def _on_stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.streams += 1
        if self.streams > 1:
            # One session per connection: a further stream is ended at once.
            self.endpoint.metrics.inc("quic.dropped.extra_stream")
            writer.close()
            return
        self.endpoint.spawn(self.endpoint.serve_stream(self, reader, writer))

    def quic_event_received(self, event: events.QuicEvent) -> None:
        super().quic_event_received(event)
        if isinstance(event, events.HandshakeCompleted):
            self.handshaken = True
        if isinstance(event, events.ConnectionTerminated) and not self.terminated:
            self.terminated = True
            self.endpoint.forget(self)


class _Socket(asyncio.DatagramProtocol):
    def __init__(self, endpoint: QuicEndpoint) -> None:
        self.endpoint = endpoint

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.endpoint.datagram_received(data, (addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:
        self.endpoint.metrics.inc("quic.net_error")


class QuicEndpoint:
    """QUIC sessions on one UDP socket; ``accept`` set: it also serves incoming ones."""

    def __init__(
        self,
        sendto: Callable[[bytes, Address], object],
        *,
        accept: StreamHandler | None = None,
        metrics: Metrics | None = None,
        keepalive: float = KEEPALIVE,
        idle_timeout: float = IDLE_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
        per_subnet: int = PER_SUBNET,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
    ) -> None:
        self._sendto = sendto
        self.handshake_timeout = handshake_timeout
        self.accept = accept
        self.metrics = metrics or Metrics()
        self.keepalive = keepalive
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.per_subnet = per_subnet
        self.closed = False
        self.local: Address | None = None
        self._wire = _Wire(self)
        self._by_cid: dict[bytes, QuicSession] = {}
        self._sessions: set[QuicSession] = set()
        self._groups: Counter[str] = Counter()
        self.routes: dict[bytes, Route] = {}
        self._aliases: dict[Address, bytes] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ticker: asyncio.Task[None] | None = None
        self._socket: asyncio.DatagramTransport | None = None
        self._dht: HardenedRPCProtocol | None = None
        self._server_config: QuicConfiguration | None = None

    # -- making one ---------------------------------------------------------------------

    @classmethod
    async def bind(cls, host: str, port: int = 0, **options: Any) -> QuicEndpoint:
        """An endpoint on a UDP socket of its own at ``host``:``port``."""
        endpoint: QuicEndpoint

        def sendto(data: bytes, addr: Address) -> None:
            if endpoint._socket is not None and not endpoint._socket.is_closing():
                endpoint._socket.sendto(data, addr)

        endpoint = cls(sendto, **options)
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Socket(endpoint), local_addr=(host, port)
        )
        endpoint._socket = transport
        sock = transport.get_extra_info("sockname")
        endpoint.local = (str(sock[0]), int(sock[1]))
        return endpoint

    @classmethod
    def on_dht(cls, proto: HardenedRPCProtocol, **options: Any) -> QuicEndpoint:
        """An endpoint sharing the DHT node's socket (and its NAT mappings)."""
        if proto.foreign_datagram is not None:
            raise RuntimeError("this DHT socket already carries a QUIC endpoint")
        endpoint = cls(proto.send_datagram, metrics=proto.metrics, **options)
        proto.foreign_datagram = endpoint.datagram_received
        endpoint._dht = proto
        _ON_DHT[proto] = endpoint
        return endpoint

    @staticmethod
    def of(proto: HardenedRPCProtocol) -> QuicEndpoint | None:
        """The open endpoint on this DHT socket, if there is one."""
        endpoint = _ON_DHT.get(proto)
        return endpoint if endpoint is not None and not endpoint.closed else None

    def _configuration(self, *, client: bool) -> QuicConfiguration:
        config = QuicConfiguration(
            is_client=client,
            alpn_protocols=[ALPN],
            idle_timeout=self.idle_timeout,
            connection_id_length=CID_LENGTH,
            server_name=SERVER_NAME if client else None,
        )
        if client:
            # The session's Ed25519 handshake authenticates the referee (fairdht.transport.tls).
            config.verify_mode = ssl.CERT_NONE
        else:
            config.certificate, config.private_key = self_signed()
        return config

    # -- datagrams ------------------------------------------------------------------------

    def send(self, data: bytes, addr: Any) -> None:
        """Send one QUIC datagram to a real address or along a ``Via`` peer's route."""
        if self.closed:
            return
        if isinstance(addr, Via):
            route = self.routes.get(addr.peer)
            if route is None:
                self.metrics.inc("quic.dropped.no_route")
                return
            if route.waiting_since is None:
                route.waiting_since = asyncio.get_running_loop().time()
            self.metrics.inc(f"quic.bytes_out.{route.kind}", len(data))
            try:
                route.send(data)
            except (ValueError, OSError) as exc:
                self.metrics.inc("quic.send_error")
                log.debug("route to %s: %s", addr.peer.hex()[:12], exc)
            return
        self._sendto(data, addr)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        """A datagram from the socket; never raises."""
        peer = self._aliases.get(addr)
        self._receive(data, addr if peer is None else Via(peer))

    def deliver_via(self, peer: bytes, data: bytes) -> None:
        """A datagram that came along ``peer``'s route (a relay circuit)."""
        self._receive(data, Via(peer))

    def _receive(self, data: bytes, addr: Any) -> None:
        try:
            self._route(data, addr)
        except Exception:  # aioquic's parsers on a peer's bytes: drop, count, go on
            self.metrics.inc("quic.errors")
            log.exception("QUIC datagram from %s", addr)

    def _route(self, data: bytes, addr: Any) -> None:
        if self.closed:
            return
        if isinstance(addr, Via):
            route = self.routes.get(addr.peer)
            if route is not None:
                route.waiting_since, route.probed = None, False
                self.metrics.inc(f"quic.bytes_in.{route.kind}", len(data))
        try:
            header = pull_quic_header(Buffer(data=data), host_cid_length=CID_LENGTH)
        except ValueError:
            self.metrics.inc("quic.dropped.bad_header")
            return
        session = self._by_cid.get(header.destination_cid)
        if session is None:
            session = self._new_server_session(data, header, addr)
            if session is None:
                return
        session.datagram_received(data, addr)

    def _new_server_session(self, data: bytes, header: Any, addr: Any) -> QuicSession | None:
        if self.accept is None:
            self.metrics.inc("quic.dropped.unknown_connection")
            return None
        if header.packet_type != QuicPacketType.INITIAL or len(data) < _SMALLEST_INITIAL:
            self.metrics.inc("quic.dropped.unknown_connection")
            return None
        if self._server_config is None:
            self._server_config = self._configuration(client=False)
        if header.version not in self._server_config.supported_versions:
            # No version negotiation packet: nothing goes to a source that proved nothing.
            self.metrics.inc("quic.dropped.version")
            return None
        group = _group(addr)
        if len(self._sessions) >= self.max_connections:
            self.metrics.inc("quic.refused.full")
            return None
        if self._groups[group] >= self.per_subnet:
            self.metrics.inc("quic.refused.subnet")
            return None
        quic = QuicConnection(
            configuration=self._server_config,
            original_destination_connection_id=header.destination_cid,
        )
        session = self._adopt(quic, group, server=True)
        self._by_cid[header.destination_cid] = session
        session.peer = addr
        self.metrics.inc("quic.accepted")
        return session

    def _adopt(self, quic: QuicConnection, group: str, *, server: bool) -> QuicSession:
        session = QuicSession(quic, self, group, server=server)
        session.connection_made(self._wire)  # type: ignore[arg-type]  # a datagram router
        session._connection_id_issued_handler = lambda cid: self._by_cid.__setitem__(cid, session)
        session._connection_id_retired_handler = lambda cid: self._by_cid.pop(cid, None)  # type: ignore[assignment]
        self._by_cid[quic.host_cid] = session
        self._sessions.add(session)
        self._groups[group] += 1
        self._start_ticker()
        return session

    def forget(self, session: QuicSession) -> None:
        """A connection ended: free its ids and its share of the limits."""
        if session not in self._sessions:
            return
        self._sessions.discard(session)
        for cid in [c for c, s in self._by_cid.items() if s is session]:
            del self._by_cid[cid]
        self._groups[session.group] -= 1
        if self._groups[session.group] <= 0:
            del self._groups[session.group]
        # The last session along a punched or relayed route is over: free the route (a
        # relay circuit would otherwise hold one of the peer's slots for its lifetime).
        peer = session.peer
        if isinstance(peer, Via) and not any(s.peer == peer for s in self._sessions):
            route = self.routes.get(peer.peer)
            if route is not None:
                self._drop_route(route)
                if not route.failure:  # a failed one stays, to say why (``failure``)
                    del self.routes[peer.peer]

    @property
    def connections(self) -> int:
        """Open QUIC connections."""
        return len(self._sessions)

    # -- streams --------------------------------------------------------------------------

    async def connect(self, addr: Any, *, timeout: float = 10.0) -> QuicSession:
        """A handshaken client connection to ``addr`` (an address or a ``Via``)."""
        quic = QuicConnection(configuration=self._configuration(client=True))
        session = self._adopt(quic, _group(addr), server=False)
        session.peer = addr
        try:
            session.connect(addr)
            await asyncio.wait_for(session.wait_connected(), timeout)
        except (TimeoutError, ConnectionError, OSError):
            session.close()
            self.forget(session)
            raise
        return session

    async def open_stream(self, addr: Any, *, path: str, timeout: float = 10.0) -> Stream:
        """A session stream to ``addr`` over a new connection; ``path`` names its kind."""
        session = await self.connect(addr, timeout=timeout)
        reader, writer = await session.create_stream()
        self.metrics.inc(f"quic.path.{path}")
        return Stream(reader, writer, session, path)

    async def serve_stream(
        self, session: QuicSession, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Run the accept handler on an incoming stream, then close its connection."""
        assert self.accept is not None
        try:
            await self.accept(reader, writer)
        except Exception:
            self.metrics.inc("quic.errors")
            log.exception("session stream handler failed")
        finally:
            writer.close()
            if not self.closed:
                asyncio.get_running_loop().call_later(CLOSE_GRACE, session.close)

    # -- routes ---------------------------------------------------------------------------

    def set_route(self, peer: bytes, route: Route) -> None:
        """Reach ``peer`` (as ``Via(peer)``) along ``route`` from now on."""
        old = self.routes.get(peer)
        if old is not None and old is not route:
            self._drop_route(old)
        self.routes[peer] = route
        if route.address is not None:
            self._aliases[route.address] = peer
        self.metrics.inc(f"quic.route.{route.kind}")

    def _drop_route(self, route: Route) -> None:
        if route.address is not None:
            self._aliases.pop(route.address, None)
        if route.close is not None:
            close, route.close = route.close, None
            close()

    def serve_circuits(self, incoming: asyncio.Queue[Any]) -> None:
        """Take relayed circuits from ``incoming`` (a RelayProtocol's) as routes to their peers."""

        async def take() -> None:
            while True:
                circuit = await incoming.get()
                peer = circuit.peer_key
                circuit.on_payload = lambda data, peer=peer: self.deliver_via(peer, data)
                self.set_route(peer, Route("relayed", circuit.send, close=circuit.close))

        self.spawn(take())

    def failure(self, peer: bytes) -> str:
        """Why the route to ``peer`` failed, in one sentence ("" if it did not)."""
        route = self.routes.get(peer)
        return route.failure if route is not None else ""

    # -- timers ---------------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run ``coro`` as a task the endpoint ends when it closes."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _start_ticker(self) -> None:
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.get_running_loop().create_task(self._tick())

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        next_ping = loop.time() + self.keepalive
        while not self.closed:
            await asyncio.sleep(min(_TICK, self.keepalive))
            now = loop.time()
            if now >= next_ping:
                next_ping = now + self.keepalive
                for session in list(self._sessions):
                    session.keep_alive()
                    self.metrics.inc("quic.keepalive")
            for peer, route in list(self.routes.items()):
                self._check_route(peer, route, now)
            for session in list(self._sessions):
                if not session.handshaken and now - session.created > self.handshake_timeout:
                    self.metrics.inc("quic.dropped.handshake_timeout")
                    session.close()
                    self.forget(session)

    def _check_route(self, peer: bytes, route: Route, now: float) -> None:
        if route.waiting_since is None or now - route.waiting_since < STALL or route.rerouting:
            return
        if not route.probed:
            # Silence may be only an idle peer after our last ACK: ask with a PING.
            route.probed, route.waiting_since = True, now
            for session in list(self._sessions):
                if session.peer == Via(peer):
                    session.keep_alive()
            return
        self.metrics.inc("quic.route.dead")
        if route.reroute is None:
            route.waiting_since = None
            return
        route.rerouting = True
        self.spawn(self._reroute(peer, route))

    async def _reroute(self, peer: bytes, route: Route) -> None:
        assert route.reroute is not None
        try:
            found = await route.reroute()
        finally:
            route.rerouting = False
        if found:
            self.metrics.inc("quic.rerouted")
            for session in list(self._sessions):
                if session.peer == Via(peer):
                    session.keep_alive()
            return
        route.failure = route.failure or (
            f"the {route.kind} path to {peer.hex()[:16]} died and no other relay or punch reached it"
        )
        log.warning("%s", route.failure)
        for session in list(self._sessions):
            if session.peer == Via(peer):
                session.close(reason_phrase="path lost")

    # -- closing --------------------------------------------------------------------------

    async def close(self) -> None:
        """Close every connection (telling peers), stop the timers, leave the socket."""
        if self.closed:
            return
        for session in list(self._sessions):
            session.close()
        self.closed = True
        if self._dht is not None and self._dht.foreign_datagram == self.datagram_received:
            self._dht.foreign_datagram = None
            _ON_DHT.pop(self._dht, None)
        tasks = [t for t in (self._ticker, *self._tasks) if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._socket is not None:
            self._socket.close()


def _group(addr: Any) -> str:
    """The share of the connection limits an address counts against."""
    if isinstance(addr, Via):
        return "via:" + addr.peer.hex()
    return subnet_of(str(addr[0]))
