"""The servers a gateway proved, and the effects its cores ask the driver to carry out (sans-IO).

Liveness follows dpmaster: a proof (a challenge answered) keeps a server for ``ttl``
seconds (900, the announcement TTL); only a new proof extends it. Each proof is
published when the server is new, when what it reports changed (at most once per
``min_interval``), or when the last publication is ``reannounce`` seconds old, so the
record outlives two lost heartbeats (ioquake3 heartbeats every 300 s) and a server
that stops heartbeating drops out of every list within the TTL.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import dataclass

from fairdht.errors import RecordError
from fairdht.gateway.announce import ProvenServer
from fairdht.gateway.errors import GatewayProtocolError
from fairdht.records.schema import parse_endpoint
from fairdht.serverlist.announce import ANNOUNCE_TTL

__all__ = ["Effect", "Publish", "Registry", "Send", "Withdraw", "canonical"]


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``data`` to ``addr`` over the protocol's UDP socket."""

    addr: tuple[str, int]
    data: bytes


@dataclass(frozen=True, slots=True)
class Publish:
    """Announce (or re-announce) ``server`` on fairdht."""

    server: ProvenServer


@dataclass(frozen=True, slots=True)
class Withdraw:
    """Publish signed withdrawals for ``server`` now (it left)."""

    server: ProvenServer


Effect = Send | Publish | Withdraw


def canonical(host: str, port: int) -> str:
    """``IP:PORT`` or ``[IPv6]:PORT`` as records write it; a dual-stack socket's
    IPv4-mapped peer (``::ffff:a.b.c.d``) is written as the IPv4 address it is."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        h, p = parse_endpoint(f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}")
    except (ValueError, RecordError):
        # A raw datagram can claim source port 0: not an address anything is listed at.
        raise GatewayProtocolError(f"unusable source address {host}:{port}", "bad_source") from None
    return f"[{h}]:{p}" if ":" in h else f"{h}:{p}"


@dataclass(slots=True)
class _Held:
    server: ProvenServer
    proven_at: float
    published_at: float
    dirty: bool = False


class Registry:
    """Proven servers by address, within a per-gateway and a per-host cap."""

    def __init__(
        self,
        *,
        max_servers: int = 256,
        per_host: int = 32,
        ttl: float = ANNOUNCE_TTL,
        reannounce: float = 240.0,
        min_interval: float = 30.0,
    ) -> None:
        self.max_servers = max_servers
        self.per_host = per_host
        self.ttl = ttl
        self.reannounce = reannounce
        self.min_interval = min_interval
        self._held: dict[str, _Held] = {}
        self._per_host: Counter[str] = Counter()
        self.counters: Counter[str] = Counter()
        # Bumped whenever what is held changes (memoised replies depend on it).
        self.version = 0

    def __contains__(self, address: str) -> bool:
        return address in self._held

    def __len__(self) -> int:
        return len(self._held)

    def get(self, address: str) -> ProvenServer | None:
        """The server proven at ``address``, if any."""
        held = self._held.get(address)
        return held.server if held else None

    def servers(self, network: str | None = None) -> list[ProvenServer]:
        """Every held server (of ``network``)."""
        return [
            h.server for h in self._held.values() if network is None or h.server.network == network
        ]

    def prove(self, server: ProvenServer, now: float) -> list[Effect]:
        """Record a fresh proof; returns a Publish when one is due ([] if over a cap)."""
        self.version += 1
        held = self._held.get(server.address)
        if held is None:
            host = parse_endpoint(server.address)[0]
            if len(self._held) >= self.max_servers:
                self.counters["refused_gateway_cap"] += 1
                return []
            if self._per_host[host] >= self.per_host:
                self.counters["refused_host_cap"] += 1
                return []
            self._per_host[host] += 1
            self._held[server.address] = _Held(server, now, now)
            self.counters["proven"] += 1
            return [Publish(server)]
        changed = not held.server.same_info(server)
        held.server, held.proven_at = server, now
        due = now - held.published_at >= self.reannounce
        if due or (changed and now - held.published_at >= self.min_interval):
            held.published_at, held.dirty = now, False
            return [Publish(server)]
        held.dirty = held.dirty or changed
        return []

    def remove(self, address: str) -> ProvenServer | None:
        """Forget ``address``; returns what was held."""
        held = self._held.pop(address, None)
        if held is None:
            return None
        self.version += 1
        host = parse_endpoint(address)[0]
        self._per_host[host] -= 1
        if self._per_host[host] <= 0:
            del self._per_host[host]
        return held.server

    def tick(self, now: float) -> list[Effect]:
        """Forget servers past the TTL; publish changes held back by ``min_interval``."""
        out: list[Effect] = []
        for address, held in list(self._held.items()):
            if now - held.proven_at >= self.ttl:
                # The last record was published at most min_interval after the last
                # proof, so it expires within the TTL plus min_interval of it by itself.
                self.remove(address)
                self.counters["expired"] += 1
            elif held.dirty and now - held.published_at >= self.min_interval:
                held.dirty, held.published_at = False, now
                out.append(Publish(held.server))
        return out
