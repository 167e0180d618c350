"""An in-process event bus: what changed on a node, for its HTTP API's live stream.

Event types (docs/api.md): ``server.added``, ``server.updated``, ``server.expired``
(gone from the list: expired or withdrawn), ``server.quarantined``, ``commit``,
``checkpoint``, ``rollback``, ``karma.vote`` and ``karma.changed``.

Every subscriber has its own bounded queue. Publishing never waits: a subscriber whose
queue is full is dropped (closed and counted) rather than slowing the node or growing
its memory, the same rule OpenDHT's listen and HTTP/2 flow control follow for slow
readers. The bus keeps the last ``history`` events so a client that reconnects with
``Last-Event-ID`` (WHATWG HTML, server-sent events) misses nothing recent.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fairdht.serverlist.history import Commit
from fairdht.serverlist.listing import Entry
from fairdht.serverlist.sync import SyncResult

__all__ = [
    "DEFAULT_HISTORY",
    "DEFAULT_QUEUE",
    "EVENT_TYPES",
    "Event",
    "EventBus",
    "Subscription",
    "sync_events",
]

EVENT_TYPES = (
    "server.added",
    "server.updated",
    "server.expired",
    "server.quarantined",
    "commit",
    "checkpoint",
    "rollback",
    "karma.vote",
    "karma.changed",
)
DEFAULT_QUEUE = 256
DEFAULT_HISTORY = 512

_OP_EVENTS = {
    "added": "server.added",
    "changed": "server.updated",
    "removed": "server.expired",
    "quarantined": "server.quarantined",
}


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened: a sequence number, a type, a time and a JSON object."""

    id: int
    type: str
    time: int
    data: dict[str, Any]


class Subscription:
    """One reader's bounded queue of events; ``closed`` once it fell too far behind."""

    def __init__(self, bus: EventBus, size: int, network: str | None) -> None:
        self._bus = bus
        self.network = network
        self.queue: asyncio.Queue[Event] = asyncio.Queue(size)
        self.closed = False
        self.overflowed = False  # closed because its queue was full
        self._wake = asyncio.Event()

    def offer(self, event: Event) -> bool:
        """Queue ``event`` without waiting; False (and closed) when the queue is full."""
        if self.closed:
            return False
        if self.network is not None and event.data.get("network") not in (None, self.network):
            return True
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True
            self.close()
            return False
        self._wake.set()
        return True

    async def next(self, timeout: float) -> Event | None:
        """The next event, or None after ``timeout`` seconds or once closed."""
        if self.queue.empty() and not self.closed:
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                return None
        if self.queue.empty():
            return None
        return self.queue.get_nowait()

    def close(self) -> None:
        """Stop receiving events and wake a waiting reader."""
        if not self.closed:
            self.closed = True
            self._bus._forget(self)
        self._wake.set()


class EventBus:
    """Fan-out of events to subscribers, each with its own bounded queue."""

    def __init__(self, *, queue_size: int = DEFAULT_QUEUE, history: int = DEFAULT_HISTORY) -> None:
        if queue_size < 1 or history < 0:
            raise ValueError("queue_size must be positive and history non-negative")
        self.queue_size = queue_size
        self._ids = itertools.count(1)
        self._recent: deque[Event] = deque(maxlen=history)
        self._subscribers: set[Subscription] = set()
        self.published = 0
        self.dropped_subscribers = 0

    @property
    def subscribers(self) -> int:
        """Subscriptions currently open."""
        return len(self._subscribers)

    @property
    def last_id(self) -> int:
        """The id of the newest event (0 before the first)."""
        return self._recent[-1].id if self._recent else 0

    def publish(self, type_: str, data: dict[str, Any], *, now: float) -> Event:
        """Stamp and deliver one event; never waits, drops subscribers that fell behind."""
        if type_ not in EVENT_TYPES:
            raise ValueError(f"unknown event type {type_!r}")
        event = Event(next(self._ids), type_, int(now), data)
        self._recent.append(event)
        self.published += 1
        for sub in list(self._subscribers):
            if not sub.offer(event):
                self.dropped_subscribers += 1
        return event

    def subscribe(self, *, network: str | None = None, after: int | None = None) -> Subscription:
        """A new subscription; with ``after``, kept events newer than that id come first."""
        sub = Subscription(self, self.queue_size, network)
        if after is not None:
            for event in self._recent:
                if event.id > after and not sub.offer(event):
                    break
        if not sub.closed:
            self._subscribers.add(sub)
        return sub

    def _forget(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)

    def close(self) -> None:
        """Close every subscription (the node is stopping)."""
        for sub in list(self._subscribers):
            sub.close()


def _entry_json(entry: Entry | None) -> dict[str, Any] | None:
    return None if entry is None else entry.to_json()


def _commit_events(
    commit: Commit, listed: dict[bytes, Entry]
) -> Iterable[tuple[str, dict[str, Any]]]:
    for e in commit.entries:
        if e.op not in _OP_EVENTS:
            continue  # ``withdrawn``: a slot no client ever saw listed
        data: dict[str, Any] = {
            "network": commit.network,
            "commit": commit.id.hex(),
            "leaf": e.leaf.hex(),
            "author": e.author.hex(),
            "address": e.address,
            "name": e.name,
            "seq": e.seq,
        }
        if e.op in ("added", "changed"):
            data["server"] = _entry_json(listed.get(e.leaf))
        yield _OP_EVENTS[e.op], data
    summary = commit.to_json()
    if commit.kind in ("checkpoint", "rollback"):
        yield commit.kind, summary
    yield "commit", summary


def sync_events(
    result: SyncResult, previous: SyncResult | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """The events one replica round means: per commit its entries, then the commit itself.

    ``server.added``/``server.updated`` carry the server's full JSON (the object of
    ``fairdht servers --json``) under ``server``, so a live list needs no extra read. A
    re-announcement that changes only players, map or seq makes no commit (the history
    does not track them), yet a live list wants it: compared with the ``previous``
    round, it is a ``server.updated`` whose ``commit`` is null.
    """
    listed = {e.leaf: e for e in result.listing.listed}
    out: list[tuple[str, dict[str, Any]]] = []
    told: set[bytes] = set()
    for commit in result.commits:
        told.update(e.leaf for e in commit.entries)
        out.extend(_commit_events(commit, listed))
    if previous is not None:
        before = {e.leaf: e.record.seq for e in previous.listing.listed}
        fresh = []
        for leaf, entry in listed.items():
            if leaf in told or before.get(leaf, entry.record.seq) == entry.record.seq:
                continue
            r = entry.record
            fresh.append(
                (
                    "server.updated",
                    {
                        "network": r.network,
                        "commit": None,
                        "leaf": leaf.hex(),
                        "author": r.author.hex(),
                        "address": entry.body.address,
                        "name": entry.body.name,
                        "seq": r.seq,
                        "server": entry.to_json(),
                    },
                )
            )
        out = fresh + out
    return out
