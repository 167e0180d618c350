"""Token buckets that keep a gateway from becoming a reflector or a flood target (sans-IO).

The adversary (DESIGN.md): 1,000 free keys and any number of spoofed sources on one
/24. Every reply budget is therefore kept three ways: per source IP, per /24 (IPv6:
per /48), and for the whole gateway, so one prefix can spend its own share but never
the others' (dpmaster's flood protection throttles per address only). Buckets are
bounded in number: past ``max_tracked`` the least recently used one is forgotten,
which can only make a forgotten source start with a full bucket of its own share.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["Bucket", "BucketTable", "ReplyBudget", "prefix_of"]


def prefix_of(host: str) -> str:
    """The /24 of an IPv4 address or the /48 of an IPv6 address, as text."""
    ip = ipaddress.ip_address(host)
    bits = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{bits}", strict=False))


@dataclass(slots=True)
class Bucket:
    """A token bucket: ``rate`` tokens per second up to ``burst``."""

    rate: float
    burst: float
    tokens: float
    stamp: float

    def refill(self, now: float) -> None:
        """Add the tokens earned since the last call."""
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def can(self, cost: float, now: float) -> bool:
        """True when ``cost`` tokens are there (nothing is taken)."""
        self.refill(now)
        return self.tokens >= cost

    def take(self, cost: float, now: float) -> bool:
        """Take ``cost`` tokens if there are enough; say whether it did."""
        if not self.can(cost, now):
            return False
        self.tokens -= cost
        return True


class BucketTable:
    """One bucket per name, at most ``max_tracked`` of them (least recently used go first)."""

    def __init__(self, rate: float, burst: float, *, max_tracked: int = 65536) -> None:
        self.rate = rate
        self.burst = burst
        self.max_tracked = max_tracked
        self._buckets: OrderedDict[str, Bucket] = OrderedDict()

    def get(self, name: str, now: float) -> Bucket:
        """The bucket of ``name`` (a full one for a name not seen or forgotten)."""
        bucket = self._buckets.get(name)
        if bucket is None:
            bucket = Bucket(self.rate, self.burst, self.burst, now)
            self._buckets[name] = bucket
            while len(self._buckets) > self.max_tracked:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(name)
        return bucket

    def __len__(self) -> int:
        return len(self._buckets)


class ReplyBudget:
    """Bytes a gateway may send per source IP, per prefix and in total (each a bucket)."""

    def __init__(
        self,
        *,
        per_ip: float = 8192.0,
        per_prefix: float = 32768.0,
        total: float = 262144.0,
        window: float = 4.0,
    ) -> None:
        # Each bucket earns its rate per second and holds ``window`` seconds of it.
        self.per_ip = BucketTable(per_ip, per_ip * window)
        self.per_prefix = BucketTable(per_prefix, per_prefix * window)
        self.total = Bucket(total, total * window, total * window, 0.0)

    def spend(self, host: str, size: int, now: float) -> bool:
        """Charge ``size`` bytes to ``host``, its prefix and the total, or to none of them."""
        ip = self.per_ip.get(host, now)
        prefix = self.per_prefix.get(prefix_of(host), now)
        if not (ip.can(size, now) and prefix.can(size, now) and self.total.can(size, now)):
            return False
        ip.take(size, now)
        prefix.take(size, now)
        self.total.take(size, now)
        return True
