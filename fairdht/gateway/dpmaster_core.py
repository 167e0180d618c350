"""A dpmaster master server whose list is fairdht (sans-IO core; the driver owns the socket).

``receive(datagram, addr, now)`` and ``tick(now)`` return effects (Send, Publish,
Withdraw); nothing here reads a clock or touches a socket (STYLE.md, after aioquic).

Abuse rules (docs/gateway.md, "Abuse"):

- every source IP and /24 has a packet budget; over it, datagrams are dropped and counted;
- a ``getinfo`` challenge goes to an unproven address only in answer to a heartbeat,
  never larger than that heartbeat, at most once a second per address;
- ``getservers`` has no challenge, so its answer comes from the list cache and its
  bytes are charged per source IP, per /24 and in total (``ReplyBudget``);
- malformed datagrams get no reply and are counted by reason.

Leaving: every heartbeat of a proven server is answered by ``getinfo``; a server
shutting down sends heartbeats and then answers nothing, so when no valid
``infoResponse`` follows within ``answer_timeout`` (one resend half-way), the server
is withdrawn at once with signed withdrawals, not after the 900 s TTL.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from fairdht.gateway import dpmaster
from fairdht.gateway.announce import ProvenServer
from fairdht.gateway.challenge import Challenger
from fairdht.gateway.errors import GatewayProtocolError
from fairdht.gateway.games import GameMap
from fairdht.gateway.limits import BucketTable, ReplyBudget, prefix_of
from fairdht.gateway.listing import ListCache, Listed
from fairdht.gateway.registry import Effect, Registry, Send, Withdraw, canonical

__all__ = ["DpmasterCore", "DpmasterLimits"]

_PROOF = "dpmaster-proof"
_PROBE = "dpmaster-probe"
# "getinfo " and the 4-byte prefix: a challenge of L characters makes a 12 + L byte reply.
_GETINFO_OVERHEAD = 12
_MIN_CHALLENGE = 8


@dataclass(frozen=True, slots=True)
class DpmasterLimits:
    """Packet and byte budgets of one dpmaster face."""

    packets_per_ip: float = 5.0
    packets_per_ip_burst: float = 20.0
    packets_per_prefix: float = 50.0
    packets_per_prefix_burst: float = 200.0
    reply_bytes_per_ip: float = 8192.0
    reply_bytes_per_prefix: float = 32768.0
    reply_bytes_total: float = 262144.0
    getinfo_interval: float = 1.0
    answer_timeout: float = 4.0
    asked_window: float = 60.0
    max_tracked: int = 65536


class DpmasterCore:
    """Heartbeats in, proofs and lists out; ``counters`` says what was dropped and why."""

    def __init__(
        self,
        *,
        challenger: Challenger,
        games: GameMap,
        registry: Registry,
        cache: ListCache,
        limits: DpmasterLimits | None = None,
    ) -> None:
        self.challenger = challenger
        self.games = games
        self.registry = registry
        self.cache = cache
        self.limits = limits or DpmasterLimits()
        lim = self.limits
        self._per_ip = BucketTable(lim.packets_per_ip, lim.packets_per_ip_burst)
        self._per_prefix = BucketTable(lim.packets_per_prefix, lim.packets_per_prefix_burst)
        self.budget = ReplyBudget(
            per_ip=lim.reply_bytes_per_ip,
            per_prefix=lim.reply_bytes_per_prefix,
            total=lim.reply_bytes_total,
        )
        # Addresses that heartbeated lately (LRU-bounded): only they get published.
        self._asked: OrderedDict[str, float] = OrderedDict()
        self._last_getinfo: OrderedDict[str, float] = OrderedDict()
        # Proven servers awaiting an answer to the getinfo that followed their heartbeat.
        self._awaiting: dict[str, tuple[float, float, bytes]] = {}
        self.probed: dict[str, float] = {}
        self.counters: Counter[str] = Counter()
        self._memo: dict[dpmaster.GetServers, list[bytes]] = {}
        self._memo_versions = (-1, -1)

    # -- input -------------------------------------------------------------------------
    def receive(self, data: bytes, addr: tuple[str, int], now: float) -> list[Effect]:
        """Handle one datagram from ``addr``."""
        host, port = addr[0], addr[1]
        if not (
            self._per_ip.get(host, now).take(1, now)
            and self._per_prefix.get(prefix_of(host), now).take(1, now)
        ):
            self.counters["rate_limited"] += 1
            return []
        try:
            message = dpmaster.parse_packet(data)
            address = canonical(host, port)
        except GatewayProtocolError as exc:
            self.counters[exc.code] += 1
            return []
        match message:
            case dpmaster.Heartbeat():
                return self._heartbeat(data, host, port, address, now)
            case dpmaster.InfoResponse():
                return self._info(message, host, port, address, now)
            case dpmaster.GetServers():
                return self._getservers(message, host, port, now)
            case _:
                self.counters["unexpected"] += 1
                return []

    def _getinfo(self, purpose: str, host: str, port: int, length: int, now: float) -> bytes:
        challenge = self.challenger.text(purpose, host, port, now, length)
        return dpmaster.encode_getinfo(challenge)

    def _heartbeat(
        self, data: bytes, host: str, port: int, address: str, now: float
    ) -> list[Effect]:
        # The challenge is never larger than the heartbeat that asked for it.
        length = min(12, len(data) - _GETINFO_OVERHEAD)
        if length < _MIN_CHALLENGE:
            self.counters["short_heartbeat"] += 1
            return []
        packet = self._getinfo(_PROOF, host, port, length, now)
        # A proven server's heartbeat may be its last (ioquake3 sends them on shutdown):
        # it must be answered within answer_timeout or the server is withdrawn.
        if address in self.registry and address not in self._awaiting:
            timeout = self.limits.answer_timeout
            self._awaiting[address] = (now + timeout, now + timeout / 2, packet)
        last = self._last_getinfo.get(address)
        if last is not None and now - last < self.limits.getinfo_interval:
            # Not answered now; an awaited server gets the challenge at the resend time.
            self.counters["heartbeat_repeat"] += 1
            return []
        _remember(self._last_getinfo, address, now, self.limits.max_tracked)
        _remember(self._asked, address, now, self.limits.max_tracked)
        self.counters["getinfo_sent"] += 1
        return [Send((host, port), packet)]

    def _info(
        self, message: dpmaster.InfoResponse, host: str, port: int, address: str, now: float
    ) -> list[Effect]:
        challenge = message.challenge
        if self.challenger.check_text(_PROBE, host, port, challenge, now):
            self.probed[address] = now
            self.counters["probe_answered"] += 1
            return []
        if not self.challenger.check_text(_PROOF, host, port, challenge, now):
            self.counters["bad_challenge"] += 1
            return []
        asked = self._asked.get(address)
        if asked is None or now - asked > self.limits.asked_window:
            self.counters["unsolicited"] += 1
            return []
        self._awaiting.pop(address, None)
        try:
            max_clients = message.number("sv_maxclients", lo=1, hi=4096)
            clients = min(message.number("clients", hi=4096), max_clients)
            protocol = message.number("protocol")
        except GatewayProtocolError as exc:
            self.counters[exc.code] += 1
            return []
        network = self.games.network(message.gamename)
        if network is None:
            self.counters["unknown_game"] += 1
            return []
        info = message.info
        server = ProvenServer(
            protocol="dpmaster",
            address=address,
            game=message.gamename,
            network=network,
            name=info.get("hostname") or info.get("sv_hostname") or address,
            map=info.get("mapname", ""),
            mode=info.get("gametype", "0"),
            players=clients,
            max_players=max_clients,
            version=str(protocol),
        )
        self.probed[address] = now
        return self.registry.prove(server, now)

    def _packets(self, query: dpmaster.GetServers) -> list[bytes]:
        """The encoded reply to ``query``, memoised until the cache or registry changes."""
        versions = (self.cache.version, self.registry.version)
        if versions != self._memo_versions:
            self._memo.clear()
            self._memo_versions = versions
        packets = self._memo.get(query)
        if packets is not None:
            return packets
        network = self.games.network(query.gamename)
        servers: list[tuple[str, int]] = []
        if network is not None:
            servers = self.cache.select(
                network,
                version=str(query.protocol),
                local=self.local(network),
                empty=query.empty,
                full=query.full,
                mode=query.gametype,
                ipv4=query.ipv4,
                ipv6=query.ipv6,
            )
        packets = dpmaster.encode_servers_response(servers, extended=query.extended)
        if len(self._memo) < 256:  # distinct queries memoised per version, at most
            self._memo[query] = packets
        return packets

    def _getservers(
        self, query: dpmaster.GetServers, host: str, port: int, now: float
    ) -> list[Effect]:
        if self.games.network(query.gamename) is None:
            self.counters["unknown_game_query"] += 1
        packets = self._packets(query)
        if not self.budget.spend(host, sum(len(p) for p in packets), now):
            self.counters["reply_budget"] += 1
            return []
        self.counters["lists_sent"] += 1
        return [Send((host, port), p) for p in packets]

    def local(self, network: str) -> list[Listed]:
        """The servers of ``network`` proven here, as list entries (until the DHT has them)."""
        out = []
        for s in self.registry.servers(network):
            if s.protocol != "dpmaster":
                continue
            host, _, port = s.address.rpartition(":")
            out.append(
                Listed(host.strip("[]"), int(port), s.address, b"", None, s.version, s.mode,
                       s.players, s.max_players)
            )  # fmt: skip
        return out

    # -- timers --------------------------------------------------------------------------
    def probe(self, addresses: Iterable[tuple[str, int]], now: float) -> list[Effect]:
        """Challenge listed servers not proven here (the listing's reachability check)."""
        return [Send((h, p), self._getinfo(_PROBE, h, p, 12, now)) for h, p in addresses]

    def tick(self, now: float) -> list[Effect]:
        """Withdraw servers that left, resend half-way challenges, forget old probe results."""
        out: list[Effect] = []
        for address, (deadline, resend, packet) in list(self._awaiting.items()):
            server = self.registry.get(address)
            if server is None:
                del self._awaiting[address]
            elif now >= deadline:
                del self._awaiting[address]
                self.registry.remove(address)
                self.probed.pop(address, None)
                self.cache.forget(address)
                self.counters["left"] += 1
                out.append(Withdraw(server))
            elif now >= resend:
                self._awaiting[address] = (deadline, float("inf"), packet)
                host, _, port = address.rpartition(":")
                out.append(Send((host.strip("[]"), int(port)), packet))
        for address, at in list(self.probed.items()):
            if now - at > self.registry.ttl:
                del self.probed[address]
        return out

    def next_tick(self) -> float | None:
        """The earliest time ``tick`` has something to do (None: only the periodic tick)."""
        times = [min(d, r) for d, r, _ in self._awaiting.values()]
        return min(times) if times else None


def _remember(table: OrderedDict[str, float], key: str, now: float, limit: int) -> None:
    table[key] = now
    table.move_to_end(key)
    while len(table) > limit:
        table.popitem(last=False)
