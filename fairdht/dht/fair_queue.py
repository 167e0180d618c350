"""A bounded fair queue: deficit round robin over groups of sources (Shreedhar & Varghese).

Requests whose handling is expensive (a STORE checks and writes up to ~30 records) wait
here, one queue per source group (the /24 or /48 of ``fairdht.dht.ratelimit``), and
are served by deficit round robin: each turn a group may spend ``quantum`` cost units
(bytes of the datagram), so a /24 that floods gets the same share of the node's store
work as a /24 with one honest STORE waiting, whose request waits for at most one of
the flood's per round instead of all of them (M. Shreedhar and G. Varghese, "Efficient
Fair Queuing Using Deficit Round Robin", SIGCOMM 1995).

Bounded: at most ``group_cap`` items per group and ``total_cap`` in all. A full group
refuses its new item; a full queue drops the newest item of the longest group (which
may be the new one), so a flood from one group cannot push another group out.

Sans-IO: no clock, no loop; the caller says when to ``pop``.
"""

from __future__ import annotations

from collections import deque
from typing import Final, Generic, TypeVar

__all__ = ["DEFAULT_GROUP_CAP", "DEFAULT_TOTAL_CAP", "FairQueue"]

T = TypeVar("T")

DEFAULT_GROUP_CAP: Final = 64
DEFAULT_TOTAL_CAP: Final = 512


class FairQueue(Generic[T]):
    """Items queued per group, popped by deficit round robin over the groups."""

    def __init__(
        self,
        quantum: int,
        *,
        group_cap: int = DEFAULT_GROUP_CAP,
        total_cap: int = DEFAULT_TOTAL_CAP,
    ) -> None:
        if quantum < 1 or group_cap < 1 or total_cap < 1:
            raise ValueError("quantum and caps must be positive")
        self.quantum = quantum
        self.group_cap = group_cap
        self.total_cap = total_cap
        self._queues: dict[str, deque[tuple[int, T]]] = {}
        self._deficit: dict[str, int] = {}
        self._order: deque[str] = deque()  # groups with items, the current one first
        self._granted = False  # whether the current group got its quantum this turn
        self._size = 0

    def __len__(self) -> int:
        """Items queued in all."""
        return self._size

    def groups(self) -> int:
        """Groups with items queued."""
        return len(self._order)

    def push(self, group: str, item: T, cost: int) -> T | None:
        """Queue ``item`` of ``cost`` for ``group``; return the item dropped to make room
        (the new one if its group is full or the longest), or None."""
        queue = self._queues.get(group)
        if queue is not None and len(queue) >= self.group_cap:
            return item
        dropped: T | None = None
        if self._size >= self.total_cap:
            longest = max(self._order, key=lambda g: len(self._queues[g]))
            if queue is None or len(self._queues[longest]) > len(queue):
                dropped = self._drop_newest(longest)
            else:
                return item
            queue = self._queues.get(group)
        if queue is None:
            queue = self._queues[group] = deque()
            self._deficit[group] = 0
            self._order.append(group)
        queue.append((max(1, cost), item))
        self._size += 1
        return dropped

    def pop(self) -> T | None:
        """The next item by deficit round robin, or None if the queue is empty."""
        while self._order:
            group = self._order[0]
            queue = self._queues[group]
            cost, item = queue[0]
            if self._deficit[group] >= cost:
                self._deficit[group] -= cost
                queue.popleft()
                self._size -= 1
                if not queue:
                    self._forget(group)
                return item
            if not self._granted:
                self._deficit[group] += self.quantum
                self._granted = True
                continue
            # Its quantum is spent: the next group's turn.
            self._order.rotate(-1)
            self._granted = False
        return None

    def clear(self) -> list[T]:
        """Empty the queue; return what it held."""
        items = [item for queue in self._queues.values() for _, item in queue]
        self._queues.clear()
        self._deficit.clear()
        self._order.clear()
        self._granted = False
        self._size = 0
        return items

    def _drop_newest(self, group: str) -> T:
        queue = self._queues[group]
        _, item = queue.pop()
        self._size -= 1
        if not queue:
            self._forget(group)
        return item

    def _forget(self, group: str) -> None:
        # A group that empties leaves the round with its deficit (DRR resets it to 0).
        if self._order and self._order[0] == group:
            self._order.popleft()
            self._granted = False
        else:
            self._order.remove(group)
        del self._queues[group]
        del self._deficit[group]
