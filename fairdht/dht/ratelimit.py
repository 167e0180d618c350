"""Sans-IO rate limits per source: token buckets per host and per subnet, bounded memory.

OpenDHT limits requests per IP, but addresses are cheap: one /24 holds 256 of them and
an IPv6 host is handed a whole /64. The adversary fairdht designs against holds 1,000
keys on one /24 (DESIGN.md, "Abuse budget"), so every datagram is charged to two
buckets and passes only if both have tokens:

- its **host**: the IPv4 address, or the IPv6 /64 (BEP 42 masks IPv6 to 64 bits for
  the same reason: a host picks any address of its /64);
- its **subnet**: the /24 (IPv4) or /48 (IPv6), the groups of libp2p kad-dht's
  diversity filter (``fairdht.dht.admission.subnet_of``).

Forty addresses of one /24 thus share one subnet bucket, while peers of other subnets
keep their own. Each table holds at most ``size`` buckets, so a spray of addresses
(forged ones cost nothing) cannot grow memory. A forgotten key starts again from a full
bucket, so a full table forgets, of its ``EVICTION_SCAN`` least recently used keys, the
one whose bucket is fullest: a spray's fresh keys go before a flooder's drained bucket,
which a spray therefore cannot refill.

Every method takes time as ``now`` (seconds of the caller's clock).
"""

from __future__ import annotations

import functools
import ipaddress
from collections import OrderedDict
from dataclasses import dataclass
from itertools import islice
from typing import Final

__all__ = [
    "EVICTION_SCAN",
    "HOST",
    "SUBNET",
    "Limit",
    "RateLimiter",
    "SourceLimiter",
    "source_keys",
]

HOST: Final = "ip"
SUBNET: Final = "subnet"
# A full table looks at this many least recently used keys to pick one to forget.
EVICTION_SCAN: Final = 8


@dataclass(frozen=True, slots=True)
class Limit:
    """One token bucket's shape: ``rate`` tokens a second, ``burst`` deep; rate 0 is off."""

    rate: float
    burst: float

    def __post_init__(self) -> None:
        if self.rate < 0 or self.burst < 0:
            raise ValueError("rate and burst must be >= 0")


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    """Per-key token buckets (``rate`` per second, ``burst`` deep), at most ``size`` keys.

    A full table forgets the fullest bucket of its ``EVICTION_SCAN`` least recently used
    keys (forgetting a full bucket loses nothing: the key would start full again).
    ``early_evictions`` counts keys forgotten with fewer than ``burst`` tokens, whose
    senders got tokens back that way. ``rate`` 0 disables the limit.
    """

    def __init__(self, rate: float, burst: float, *, size: int = 4096) -> None:
        if size < 1:
            raise ValueError("a rate limiter holds at least one key")
        self.rate = rate
        self.burst = max(burst, 1.0)
        self.size = size
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self.early_evictions = 0

    def __len__(self) -> int:
        return len(self._buckets)

    def _evict(self, now: float) -> None:
        oldest = islice(self._buckets.items(), EVICTION_SCAN)
        key, bucket = max(oldest, key=lambda item: self._level(item[1], now))
        if self._level(bucket, now) < self.burst:
            self.early_evictions += 1
        del self._buckets[key]

    def _level(self, bucket: _Bucket, now: float) -> float:
        return min(self.burst, bucket.tokens + max(0.0, now - bucket.stamp) * self.rate)

    def _refill(self, key: str, now: float) -> _Bucket:
        # Runs twice per datagram (host and subnet): written out, without helper calls.
        buckets = self._buckets
        bucket = buckets.get(key)
        if bucket is None:
            if len(buckets) >= self.size:
                self._evict(now)
            bucket = buckets[key] = _Bucket(self.burst, now)
        else:
            buckets.move_to_end(key)
            elapsed = now - bucket.stamp
            tokens = bucket.tokens + (elapsed if elapsed > 0.0 else 0.0) * self.rate
            bucket.tokens = tokens if tokens < self.burst else self.burst
            bucket.stamp = now
        return bucket

    def allow(self, key: str, now: float, cost: float = 1.0) -> bool:
        """Take ``cost`` tokens from ``key``'s bucket; False (nothing taken) if too few."""
        if self.rate <= 0:
            return True
        bucket = self._refill(key, now)
        if bucket.tokens < cost:
            return False
        bucket.tokens -= cost
        return True

    def charge(self, key: str, now: float, cost: float) -> None:
        """Take ``cost`` tokens from ``key``'s bucket even if it has fewer (a debt of at
        most ``burst``): work found out after the request was let in."""
        if self.rate <= 0 or cost <= 0:
            return
        bucket = self._refill(key, now)
        bucket.tokens = max(-self.burst, bucket.tokens - cost)

    def available(self, key: str, now: float) -> float:
        """Tokens ``key`` could spend now (``burst`` for an unknown key)."""
        bucket = self._buckets.get(key)
        if self.rate <= 0 or bucket is None:
            return self.burst
        return self._level(bucket, now)


@functools.lru_cache(maxsize=4096)
def _ipv6_keys(ip: str) -> tuple[str, str]:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip, ip  # not an IP literal (a test transport's name): its own host and subnet
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if isinstance(addr, ipaddress.IPv4Address):
        text = str(addr)
        return text, text.rpartition(".")[0]
    host = ipaddress.ip_network(f"{addr}/64", strict=False)
    subnet = ipaddress.ip_network(f"{addr}/48", strict=False)
    return str(host), str(subnet)


def source_keys(ip: str) -> tuple[str, str]:
    """The (host, subnet) bucket keys of a source IP: (address, /24) or (/64, /48).

    IPv4-mapped IPv6 addresses count as their IPv4 address. Runs on every datagram
    before it is decoded, so dotted IPv4 (what a socket reports) takes no parsing.
    """
    if ":" not in ip:
        # The /24 is the text before the last dot: "198.51.100.7" -> "198.51.100".
        return ip, ip.rpartition(".")[0]
    return _ipv6_keys(ip)


class SourceLimiter:
    """Token buckets per host and per subnet of a source IP; a request needs both.

    ``allow`` (and ``refusal``) take ``cost`` from both buckets or from neither, so a
    refused request never drains a bucket. Each table holds at most ``size`` keys (LRU).
    """

    def __init__(self, host: Limit, subnet: Limit, *, size: int = 4096) -> None:
        self.hosts = RateLimiter(host.rate, host.burst, size=size)
        self.subnets = RateLimiter(subnet.rate, subnet.burst, size=size)

    def __len__(self) -> int:
        """Buckets held, both tables together (at most twice ``size``)."""
        return len(self.hosts) + len(self.subnets)

    def refusal(self, ip: str, now: float, cost: float = 1.0) -> str | None:
        """Charge ``cost`` to ``ip``'s host and subnet; None if allowed, else the limit hit.

        The refusal is ``HOST`` or ``SUBNET`` (the first bucket found short).
        """
        host, subnet = source_keys(ip)
        hosts = self.hosts
        bucket = hosts._buckets.get(host) if hosts.rate > 0 else None
        # hosts.available(host, now), written out: this runs for every datagram.
        if (hosts.burst if bucket is None else hosts._level(bucket, now)) < cost:
            hosts.allow(host, now, cost)  # takes nothing; keeps the key recently used
            return HOST
        if not self.subnets.allow(subnet, now, cost):
            return SUBNET
        hosts.allow(host, now, cost)
        return None

    def allow(self, ip: str, now: float, cost: float = 1.0) -> bool:
        """Charge ``cost`` to ``ip``'s host and subnet if both have it; False if not."""
        return self.refusal(ip, now, cost) is None

    def charge(self, ip: str, now: float, cost: float) -> None:
        """Charge ``cost`` more to ``ip``'s host and subnet, into debt if need be."""
        host, subnet = source_keys(ip)
        self.hosts.charge(host, now, cost)
        self.subnets.charge(subnet, now, cost)
