"""Latency histograms with fixed buckets, exported by ``GET /metrics`` (Prometheus text).

Bucket bounds follow the Prometheus client default, extended to 30 s: a lookup that
waits on dead peers costs multiples of the RPC timeout (DESIGN.md, kademlia pitfall 4).
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

__all__ = ["DEFAULT_BUCKETS", "Histogram", "timed"]

DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

T = TypeVar("T")


class Histogram:
    """Counts of observations per upper bound, their sum and their number."""

    def __init__(self, buckets: tuple[float, ...] = DEFAULT_BUCKETS) -> None:
        if list(buckets) != sorted(set(buckets)) or not buckets:
            raise ValueError("buckets must be distinct and increasing")
        self.buckets = buckets
        self._counts = [0] * (len(buckets) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        """Add one observation."""
        self._counts[bisect.bisect_left(self.buckets, seconds)] += 1
        self.sum += seconds
        self.count += 1

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations at or below it), ending with (inf, count)."""
        out, running = [], 0
        for bound, n in zip((*self.buckets, float("inf")), self._counts, strict=True):
            running += n
            out.append((bound, running))
        return out

    @contextmanager
    def time(self) -> Iterator[None]:
        """Observe the wall time the ``with`` block takes (monotonic clock)."""
        start = time.monotonic()
        try:
            yield
        finally:
            self.observe(time.monotonic() - start)


def timed(histogram: Histogram, call: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """``call`` wrapped so every await of it is observed in ``histogram``."""

    async def wrapper(*args: object, **kwargs: object) -> T:
        with histogram.time():
            return await call(*args, **kwargs)

    return wrapper
