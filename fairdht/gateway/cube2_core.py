"""A Cube 2 (Sauerbraten) master server whose list is fairdht (sans-IO core).

The driver reports TCP connections (``opened``, ``received``, ``closed``), UDP pongs
(``pong``) and time (``tick``); the core returns effects. Registration follows
master.cpp: ``regserv PORT`` starts pings to the TCP peer's IP at ``PORT+1`` every
``ping_every`` seconds, at most ``ping_retry`` times, then ``failreg``. The ping
carries a challenge the server echoes, so a forged pong cannot register an address,
and it only goes to the IP that completed a TCP handshake: no reflection.

Staying listed: Sauerbraten repeats ``regserv`` only hourly, but announcements live
900 s, so the gateway re-pings each registered server every ``reprove`` seconds for
up to ``keepalive`` seconds after its last ``regserv`` (master.cpp's 65 minutes);
each pong is a new proof. Leaving: when the server's master connection closes, one
ping is sent; unanswered within ``answer_timeout``, the server is withdrawn at once.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from fairdht.gateway import cube2
from fairdht.gateway.announce import ProvenServer
from fairdht.gateway.challenge import Challenger
from fairdht.gateway.errors import GatewayProtocolError
from fairdht.gateway.games import CUBE2_GAME
from fairdht.gateway.limits import BucketTable, ReplyBudget
from fairdht.gateway.listing import ListCache, Listed
from fairdht.gateway.registry import Effect, Registry, Send, Withdraw, canonical

__all__ = ["Close", "Cube2Core", "Cube2Limits", "Cube2Out", "Reply"]

_PING = "cube2-ping"


@dataclass(frozen=True, slots=True)
class Reply:
    """Write ``data`` to TCP connection ``conn``."""

    conn: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Close:
    """Close TCP connection ``conn`` once its pending output is written."""

    conn: int


Cube2Out = Reply | Close | Effect


@dataclass(frozen=True, slots=True)
class Cube2Limits:
    """Connection, ping and byte limits of one Cube 2 face."""

    connections_per_ip: int = 8
    connections_total: int = 1024
    lines_per_ip: float = 5.0
    lines_per_ip_burst: float = 20.0
    reply_bytes_per_ip: float = 16384.0
    reply_bytes_per_prefix: float = 65536.0
    reply_bytes_total: float = 524288.0
    ping_every: float = 3.0
    ping_retry: int = 5
    reprove: float = 240.0
    keepalive: float = 65 * 60.0
    answer_timeout: float = 4.0
    idle_timeout: float = 180.0


@dataclass(slots=True)
class _Conn:
    host: str
    opened_at: float
    last_input: float
    reader: cube2.LineReader = field(default_factory=cube2.LineReader)
    servport: int | None = None


@dataclass(slots=True)
class _Target:
    """A registered (or registering) server the core pings."""

    host: str
    port: int
    conn: int | None
    regserv_at: float
    next_ping: float
    pings_left: int
    registered: bool = False
    leave_deadline: float | None = None


class Cube2Core:
    """``regserv`` proofs and ``list`` answers for one network."""

    def __init__(
        self,
        *,
        challenger: Challenger,
        network: str,
        registry: Registry,
        cache: ListCache,
        limits: Cube2Limits | None = None,
    ) -> None:
        self.challenger = challenger
        self.network = network
        self.registry = registry
        self.cache = cache
        self.limits = limits or Cube2Limits()
        lim = self.limits
        self._lines = BucketTable(lim.lines_per_ip, lim.lines_per_ip_burst)
        self.budget = ReplyBudget(
            per_ip=lim.reply_bytes_per_ip,
            per_prefix=lim.reply_bytes_per_prefix,
            total=lim.reply_bytes_total,
        )
        self._conns: dict[int, _Conn] = {}
        self._per_ip: Counter[str] = Counter()
        self._targets: dict[str, _Target] = {}
        self.probed: dict[str, float] = {}
        self.counters: Counter[str] = Counter()

    # -- TCP ---------------------------------------------------------------------------
    def opened(self, conn: int, host: str, now: float) -> list[Cube2Out]:
        """A client connected; over a connection cap it is closed at once."""
        lim = self.limits
        if (
            len(self._conns) >= lim.connections_total
            or self._per_ip[host] >= lim.connections_per_ip
        ):
            self.counters["connection_cap"] += 1
            return [Close(conn)]
        self._conns[conn] = _Conn(host, now, now)
        self._per_ip[host] += 1
        return []

    def idle_limit(self, conn: int) -> float:
        """How long ``conn`` may stay silent: a registered server's master connection
        the ``keepalive`` (master.cpp's 65 minutes), anyone else ``idle_timeout``."""
        state = self._conns.get(conn)
        if state is not None and state.servport is not None:
            target = self._targets.get(canonical(state.host, state.servport))
            if target is not None and target.registered and target.conn == conn:
                return self.limits.keepalive
        return self.limits.idle_timeout

    def closed(self, conn: int, now: float) -> list[Cube2Out]:
        """A connection ended; a registered server's closing starts its leave check."""
        state = self._conns.pop(conn, None)
        if state is None:
            return []
        self._per_ip[state.host] -= 1
        if self._per_ip[state.host] <= 0:
            del self._per_ip[state.host]
        if state.servport is None:
            return []
        address = canonical(state.host, state.servport)
        target = self._targets.get(address)
        if target is None or target.conn != conn:
            return []
        target.conn = None
        if not target.registered:
            del self._targets[address]
            return []
        target.leave_deadline = now + self.limits.answer_timeout
        return [self._ping(target, now)]

    def received(self, conn: int, data: bytes, now: float) -> list[Cube2Out]:
        """Bytes from a connection: each complete line is one command."""
        state = self._conns.get(conn)
        if state is None:
            return []
        state.last_input = now
        try:
            commands = state.reader.feed(data)
        except GatewayProtocolError as exc:
            self.counters[exc.code] += 1
            return [Close(conn)]
        out: list[Cube2Out] = []
        for command in commands:
            if not self._lines.get(state.host, now).take(1, now):
                self.counters["rate_limited"] += 1
                return [*out, Close(conn)]
            match command:
                case cube2.ListRequest():
                    out.extend(self._list(conn, state, now))
                    return out
                case cube2.RegServ(port=port):
                    out.extend(self._regserv(conn, state, port, now))
                case cube2.Ignored():
                    self.counters["ignored_command"] += 1
        return out

    def _list(self, conn: int, state: _Conn, now: float) -> list[Cube2Out]:
        servers = self.cache.select(self.network, version=None, local=self.local())
        data = cube2.encode_list(servers)
        if not self.budget.spend(state.host, len(data), now):
            self.counters["reply_budget"] += 1
            return [Close(conn)]
        self.counters["lists_sent"] += 1
        return [Reply(conn, data), Close(conn)]

    def _regserv(self, conn: int, state: _Conn, port: int, now: float) -> list[Cube2Out]:
        if state.servport is not None and state.servport != port:
            return [Reply(conn, cube2.failreg("invalid port"))]
        state.servport = port
        address = canonical(state.host, port)
        target = self._targets.get(address)
        if target is None:
            if len(self._targets) >= 2 * self.registry.max_servers:
                self.counters["refused_gateway_cap"] += 1
                return [Reply(conn, cube2.failreg("gateway full"))]
            target = _Target(state.host, port, conn, now, now, self.limits.ping_retry)
            self._targets[address] = target
        target.conn, target.regserv_at, target.leave_deadline = conn, now, None
        target.pings_left = self.limits.ping_retry
        target.next_ping = now
        return self._due_pings(now, only=address)

    # -- UDP ---------------------------------------------------------------------------
    def _ping(self, target: _Target, now: float) -> Send:
        challenge = self.challenger.raw(_PING, target.host, target.port + 1, now)
        self.counters["pings_sent"] += 1
        return Send((target.host, target.port + 1), cube2.encode_ping(challenge))

    def pong(self, data: bytes, addr: tuple[str, int], now: float) -> list[Cube2Out]:
        """A datagram on the ping socket: a valid pong proves ``addr`` minus one."""
        host, info_port = addr[0], addr[1]
        try:
            pong = cube2.parse_pong(data)
            address = canonical(host, info_port - 1)
        except GatewayProtocolError as exc:
            self.counters[exc.code] += 1
            return []
        challenge = pong.echo[1:]
        if not self.challenger.check_raw(_PING, host, info_port, challenge, now):
            self.counters["bad_challenge"] += 1
            return []
        self.probed[address] = now
        target = self._targets.get(address)
        if target is None:
            self.counters["probe_answered"] += 1
            return []
        out: list[Cube2Out] = []
        if not target.registered and target.conn is not None:
            out.append(Reply(target.conn, cube2.succreg()))
        target.registered, target.leave_deadline = True, None
        target.pings_left = self.limits.ping_retry
        target.next_ping = now + self.limits.reprove
        info = pong.info
        server = ProvenServer(
            protocol="cube2",
            address=address,
            game=CUBE2_GAME,
            network=self.network,
            name=info.description or address,
            map=info.map,
            mode=str(info.mode),
            players=info.clients,
            max_players=info.max_clients,
            version=str(info.protocol),
        )
        effects = self.registry.prove(server, now)
        if not effects and address not in self.registry:
            self.counters["refused_cap"] += 1
        out.extend(effects)
        return out

    def probe(self, addresses: list[tuple[str, int]], now: float) -> list[Cube2Out]:
        """Ping listed servers not proven here (the listing's reachability check)."""
        out: list[Cube2Out] = []
        for host, port in addresses:
            challenge = self.challenger.raw(_PING, host, port + 1, now)
            out.append(Send((host, port + 1), cube2.encode_ping(challenge)))
        return out

    def local(self) -> list[Listed]:
        """Servers proven here, as list entries (until the DHT has them)."""
        out = []
        for s in self.registry.servers(self.network):
            if s.protocol == "cube2":
                host, _, port = s.address.rpartition(":")
                out.append(Listed(host.strip("[]"), int(port), s.address, b"", None, s.version))
        return out

    # -- time --------------------------------------------------------------------------
    def _due_pings(self, now: float, *, only: str | None = None) -> list[Cube2Out]:
        out: list[Cube2Out] = []
        items = [(only, self._targets[only])] if only else list(self._targets.items())
        for address, target in items:
            if address is None or target.next_ping > now:
                continue
            if target.pings_left <= 0:
                if not target.registered and target.conn is not None:
                    out.append(Reply(target.conn, cube2.failreg("failed pinging server")))
                del self._targets[address]
                continue
            target.pings_left -= 1
            target.next_ping = now + self.limits.ping_every
            out.append(self._ping(target, now))
        return out

    def tick(self, now: float) -> list[Cube2Out]:
        """Ping retries and re-proofs, leave checks, idle connections, expired proofs."""
        out: list[Cube2Out] = []
        for address, target in list(self._targets.items()):
            if target.leave_deadline is not None and now >= target.leave_deadline:
                del self._targets[address]
                server = self.registry.remove(address)
                self.probed.pop(address, None)
                self.cache.forget(address)
                if server is not None:
                    self.counters["left"] += 1
                    out.append(Withdraw(server))
            elif target.registered and now - target.regserv_at > self.limits.keepalive:
                del self._targets[address]
        out.extend(self._due_pings(now))
        for conn, state in list(self._conns.items()):
            if now - state.last_input > self.limits.idle_timeout and state.servport is None:
                out.append(Close(conn))
        for address, at in list(self.probed.items()):
            if now - at > self.registry.ttl:
                del self.probed[address]
        return out
