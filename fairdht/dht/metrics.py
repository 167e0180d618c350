"""Counters for what the DHT layer did and dropped (``dropped.<reason>`` and friends)."""

from __future__ import annotations

from collections import Counter

__all__ = ["Metrics"]


class Metrics:
    """A map of named counters; names look like ``dropped.undecodable`` or ``rpc.ping.ok``."""

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()

    def inc(self, name: str, n: int = 1) -> None:
        """Add ``n`` to counter ``name``."""
        self._counts[name] += n

    def get(self, name: str) -> int:
        """The value of counter ``name`` (0 if never incremented)."""
        return self._counts.get(name, 0)

    def total(self, prefix: str) -> int:
        """Sum of every counter whose name starts with ``prefix``."""
        return sum(v for k, v in self._counts.items() if k.startswith(prefix))

    def snapshot(self) -> dict[str, int]:
        """A copy of all counters, sorted by name."""
        return dict(sorted(self._counts.items()))

    def __repr__(self) -> str:
        return f"Metrics({self.snapshot()!r})"
