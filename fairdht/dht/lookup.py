"""Iterative Kademlia lookups with alpha queries always in flight, and record merging.

kademlia's crawler sends alpha queries per round and waits for all of them, so a
dead peer costs a whole timeout every round (DESIGN.md pitfall 4). ``Lookup`` keeps
up to alpha queries in flight and starts the next one as soon as any answers; a node
silent past the stall time stops holding a slot, so dead peers met in successive
rounds overlap instead of adding up: a lookup pays at most about one RPC timeout,
and usually only the stall time.

The merge helpers are the read rule of DESIGN.md "Records": newest record per
(author, subkey) over every answer, a withdrawal hiding its slot. ``Agreement`` is a
get's stopping rule: signed records are verifiable from any holder, so a get need not
wait, as find_node does, until the k closest have answered; it stops once
``read_replicas`` holders in a row add no new record to what it already merged.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from kademlia.node import Node

from fairdht.dht.metrics import Metrics
from fairdht.records import Record

__all__ = [
    "Agreement",
    "Lookup",
    "QueryResult",
    "State",
    "merge_newest",
    "missing_from",
    "newest_per_slot",
]

LOG = logging.getLogger(__name__)

Slot = tuple[bytes, bytes]


class State(Enum):
    """Where a node of a lookup's shortlist stands."""

    NEW = "new"
    IN_FLIGHT = "in_flight"
    STALLED = "stalled"  # asked, no answer within the stall time: out of consideration
    ANSWERED = "answered"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class QueryResult:
    """What one query returned: whether the node answered (fully), and its contacts."""

    ok: bool
    contacts: list[Node] = field(default_factory=list)


@dataclass(slots=True)
class _Entry:
    distance: int
    node: Node
    state: State = State.NEW
    started: float = 0.0
    round: int = 0
    # It went past the stall time once; ``ask_again`` queued it again after that.
    stalled: bool = False
    asked_again: bool = False


Query = Callable[[Node], Awaitable[QueryResult]]

_OUT = (State.FAILED, State.STALLED)


class Lookup:
    """The shortlist of one iterative lookup for ``target`` (Kademlia §2.3).

    ``run`` keeps ``alpha`` queries in flight to the closest unqueried nodes and starts
    the next as soon as one answers; once ``alpha`` answers in a row bring nobody closer
    than the closest already seen, it asks all of the k closest not yet asked at once. A node silent for ``stall`` seconds is "removed from
    consideration until and unless it does respond" (§2.3): it stops holding a slot and
    stops blocking the end, while its answer still counts if it comes. The lookup ends
    when the k closest responsive nodes have answered (waiting for stalled ones only
    while fewer than k responsive nodes are known), when ``enough()`` holds and the
    queries in flight have answered or stalled (an answer already on its way may still
    change the result, and its datagram is sent anyway), or after ``max_queries``
    queries. ``width()``, when given, replaces alpha (and the final phase's k) as the
    number of queries in flight. ``run`` may be called again to go on.

    ``rounds`` counts sequential round trips: a query started on the strength of an
    answer of round r is of round r + 1, the first ones of round 1.
    """

    def __init__(
        self,
        target: bytes,
        query: Query,
        *,
        k: int,
        alpha: int,
        max_queries: int,
        metrics: Metrics,
        stall: float | None = None,
        skip: Iterable[bytes] = (),
        claims: dict[tuple[Any, Any], int] | None = None,
        path: int = 0,
    ) -> None:
        self.target = target
        self._target_int = int.from_bytes(target, "big")
        self._query = query
        self.k = k
        self.alpha = alpha
        self.max_queries = max_queries
        self.metrics = metrics
        self.stall = stall
        self._skip = set(skip)
        # Disjoint lookups (S/Kademlia §4.4): lookups sharing ``claims`` never query the
        # same node; the first path to pick a node owns it, the others pass it by.
        self._claims = claims
        self.path = path
        # One id per address: a hostile peer naming made-up ids at its own address (ids
        # next to the target, S/Kademlia §4.1's threat) gets one place in the shortlist.
        self._homes: dict[tuple[Any, Any], bytes] = {}
        self._entries: dict[bytes, _Entry] = {}
        # (distance, id, entry), nearest first (distances are unique: one id each).
        self._order: list[tuple[int, bytes, _Entry]] = []
        self._stalled_pending = 0
        self.queries = 0
        self.failures = 0
        self.stalls = 0
        # §2.3: once a round's answers bring nobody closer than the closest already
        # seen, the remaining k closest are all asked at once.
        self._no_progress = 0
        self.final_phase = False
        self._round = 0
        self.rounds = 0

    def distance(self, node_id: bytes) -> int:
        """XOR distance of ``node_id`` to the target."""
        return int.from_bytes(node_id, "big") ^ self._target_int

    def add(self, nodes: Iterable[Node], *, force: bool = False) -> None:
        """Add contacts to the shortlist (ids in ``skip`` only with ``force``)."""
        t = self._target_int
        self._add_ranked(((int.from_bytes(n.id, "big") ^ t, n) for n in nodes), force)

    def add_ranked(self, ranked: Iterable[tuple[int, Node]]) -> None:
        """``add`` for contacts whose distances to the target are known: (distance, node)."""
        self._add_ranked(ranked, False)

    def _add_ranked(self, ranked: Iterable[tuple[int, Node]], force: bool) -> None:
        entries, homes, skip, order = self._entries, self._homes, self._skip, self._order
        added = 0
        for distance, node in ranked:
            node_id = node.id
            if node_id in entries or (not force and node_id in skip):
                continue
            ip = node.ip
            if ip is not None and homes.setdefault((ip, node.port), node_id) != node_id:
                self.metrics.inc("lookup.duplicate_address")
                continue
            entry = entries[node_id] = _Entry(distance, node)
            order.append((distance, node_id, entry))
            added += 1
        if added == 1 and len(order) > 1:
            # One new contact (a holder's short list often names one): place it.
            bisect.insort(order, order.pop())
        elif added:
            order.sort()  # Timsort: the old run stays sorted, the new one is merged in

    def live(self, n: int) -> list[_Entry]:
        """The ``n`` closest entries that have neither failed nor stalled."""
        out: list[_Entry] = []
        for _, _, entry in self._order:
            if entry.state not in _OUT:
                out.append(entry)
                if len(out) == n:
                    break
        return out

    def closest_answered(self, n: int) -> list[Node]:
        """The ``n`` closest nodes that answered, nearest first."""
        out: list[Node] = []
        for _, _, entry in self._order:
            if entry.state is State.ANSWERED:
                out.append(entry.node)
                if len(out) == n:
                    break
        return out

    def settled(self, n: int) -> bool:
        """True when the ``n`` closest responsive nodes have all answered (and, if fewer
        than ``n`` are known, no stalled node may still answer)."""
        window = self.live(n)
        if not all(e.state is State.ANSWERED for e in window):
            return False
        return len(window) >= n or self._stalled_pending == 0

    def answered_count(self) -> int:
        """How many nodes answered so far."""
        return sum(1 for e in self._entries.values() if e.state is State.ANSWERED)

    async def run(
        self,
        enough: Callable[[], bool] | None = None,
        width: Callable[[], int] | None = None,
    ) -> None:
        """Query until settled for k, or ``enough()``, or out of budget."""
        loop = asyncio.get_running_loop()
        in_flight: dict[asyncio.Future[QueryResult], _Entry] = {}
        # Finished queries, in the order they finished: each task reports here once (one
        # callback per query, where asyncio.wait would add and remove one per task at
        # every wait).
        finished: deque[asyncio.Future[QueryResult]] = deque()
        waker: list[asyncio.Future[None] | None] = [None]

        def on_done(task: asyncio.Future[QueryResult]) -> None:
            finished.append(task)
            wake = waker[0]
            if wake is not None and not wake.done():
                wake.set_result(None)

        k = self.k
        try:
            while True:
                active = 0
                first: float | None = None
                for e in in_flight.values():
                    if e.state is State.IN_FLIGHT:
                        active += 1
                        if first is None or e.started < first:
                            first = e.started
                satisfied = enough is not None and enough()
                if satisfied and not active:
                    return
                window = self.live(k)
                if all(e.state is State.ANSWERED for e in window) and (
                    len(window) >= k or self._stalled_pending == 0
                ):
                    return  # settled for k (``settled``)
                skipped = False
                if not satisfied:
                    final = k if self.final_phase else self.alpha
                    cap = width() if width is not None else final
                    for entry in window:
                        if active >= cap or self.queries >= self.max_queries:
                            break
                        if entry.state is not State.NEW:
                            continue
                        if not self._claim(entry):
                            entry.state = State.FAILED
                            skipped = True
                            self.metrics.inc("lookup.disjoint_skipped")
                            continue
                        entry.state = State.IN_FLIGHT
                        entry.started = now = loop.time()
                        if first is None:
                            first = now
                        entry.round = self._round + 1
                        self.queries += 1
                        active += 1
                        started = asyncio.ensure_future(self._query(entry.node))
                        started.add_done_callback(on_done)
                        in_flight[started] = entry
                if not in_flight:
                    if skipped:
                        continue  # the window moved past nodes another path owns
                    if self.queries >= self.max_queries:
                        self.metrics.inc("lookup.query_limit")
                    return
                if not finished:
                    wake = waker[0] = loop.create_future()
                    timer = None
                    if self.stall is not None and first is not None:
                        timeout = max(0.0, first + self.stall - loop.time())
                        timer = loop.call_later(timeout, _wake, wake)
                    try:
                        await wake
                    finally:
                        waker[0] = None
                        if timer is not None:
                            timer.cancel()
                while finished:
                    task = finished.popleft()
                    entry = in_flight.pop(task)
                    if entry.state is State.STALLED:
                        self._stalled_pending -= 1
                    result = self._result_of(task)
                    entry.state = State.ANSWERED if result.ok else State.FAILED
                    if not result.ok:
                        self.failures += 1
                    else:
                        self._round = max(self._round, entry.round)
                        self.rounds = max(self.rounds, entry.round)
                    self._progress(result.contacts)
                if self.stall is not None:
                    now = loop.time()
                    for entry in in_flight.values():
                        if entry.state is State.IN_FLIGHT and now >= entry.started + self.stall:
                            entry.state = State.STALLED
                            entry.stalled = True
                            self._stalled_pending += 1
                            self.stalls += 1
                            self.metrics.inc("lookup.stalled")
        finally:
            for task in in_flight:
                task.remove_done_callback(on_done)
                task.cancel()
            for entry in in_flight.values():
                # A stalled node we stop waiting for is given up; others may be re-asked.
                entry.state = State.FAILED if entry.state is State.STALLED else State.NEW
                if entry.state is State.NEW:
                    self.queries -= 1
            self._stalled_pending = 0
            if in_flight:
                await asyncio.gather(*in_flight, return_exceptions=True)

    def ask_again(self) -> int:
        """Make the nodes closer than the k-th closest answer that stalled and never
        answered queryable once more (each once per lookup); return how many.

        Under loss a stall is most often one lost datagram, not a dead node, and ``run``
        ends without waiting for it once k farther nodes answered: a put that stored on
        the answered k closest would leave out the nodes a reader asks first (the 50-node
        simulation at 10% loss, docs/protocol.md "Writing: put"). Call ``run`` again after.
        """
        again = answered = 0
        for _, _, entry in self._order:
            if answered >= self.k:
                break
            if entry.state is State.ANSWERED:
                answered += 1
            elif entry.state is State.FAILED and entry.stalled and not entry.asked_again:
                entry.state = State.NEW
                entry.asked_again = True
                again += 1
        if again:
            self.metrics.inc("lookup.asked_again", again)
        return again

    def _claim(self, entry: _Entry) -> bool:
        if self._claims is None:
            return True
        # Claimed by address, so a machine behind several ids serves one path only.
        home = (entry.node.ip, entry.node.port)
        return self._claims.setdefault(home, self.path) == self.path

    def _progress(self, contacts: list[Node]) -> None:
        closest = self._order[0][0] if self._order else None
        self.add(contacts)
        if self._order and (closest is None or self._order[0][0] < closest):
            self._no_progress = 0
        else:
            self._no_progress += 1
            if self._no_progress >= self.alpha and not self.final_phase:
                self.final_phase = True
                self.metrics.inc("lookup.final_phase")

    def _result_of(self, task: asyncio.Future[QueryResult]) -> QueryResult:
        exc = task.exception()
        if exc is not None:
            self.metrics.inc("errors.lookup_query")
            LOG.error("lookup query failed", exc_info=exc)
            return QueryResult(False)
        return task.result()


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Agreement:
    """A get's stopping rule: ``needed`` holders in a row that add nothing new.

    Every record is signed, so any holder's answer can be checked on its own, and
    merging over several holders protects against a stale one (DESIGN.md "Records").
    Replicas may still differ (a replica that missed a write, per-source fair shares
    that hold different subsets), so one agreeing answer is not enough: the get stops
    once ``needed`` holders in a row brought no slot and no newer record than those
    merged before them. A node that holds nothing for the key is not a holder and
    neither counts nor breaks the run.
    """

    def __init__(self, needed: int) -> None:
        self.needed = needed
        self.holders = 0
        self.streak = 0
        self.disagreements = 0
        self._best: dict[Slot, Record] = {}

    def observe(self, records: Iterable[Record]) -> bool:
        """Count one holder's complete answer; True if it added a slot or a newer record."""
        added = False
        seen = False
        for record in records:
            seen = True
            held = self._best.get(record.slot)
            if held is None or _newer(record, held):
                self._best[record.slot] = record
                added = True
        if not seen:
            return False
        if added and self.holders:
            self.disagreements += 1
        self.holders += 1
        self.streak = 0 if added else self.streak + 1
        return added

    def done(self) -> bool:
        """True once ``needed`` holders in a row added nothing."""
        return self.streak >= self.needed

    def wanted(self) -> int:
        """Answers still needed at the least: the rest of the run, plus a first holder."""
        return self.needed - self.streak + (0 if self.holders else 1)


def _newer(a: Record, b: Record) -> bool:
    # Strictly newer seq wins (the storage rule); equal seq with other bytes is an
    # author's equivocation: pick the larger bytes so every reader picks the same one.
    return (a.seq, a.raw) > (b.seq, b.raw)


def newest_per_slot(records: Iterable[Record]) -> dict[Slot, Record]:
    """The newest record of each (author, subkey) among ``records``."""
    best: dict[Slot, Record] = {}
    for record in records:
        held = best.get(record.slot)
        if held is None or _newer(record, held):
            best[record.slot] = record
    return best


def merge_newest(answers: Iterable[Iterable[Record]]) -> dict[Slot, Record]:
    """Merge several replicas' answers: newest per slot over all of them."""
    return newest_per_slot(r for answer in answers for r in answer)


def missing_from(answer: Iterable[Record], merged: dict[Slot, Record]) -> list[Record]:
    """The merged records a replica lacks or holds an older seq of (what to push back)."""
    if (
        isinstance(answer, list)
        and len(answer) == len(merged)
        and all(merged.get(r.slot) is r for r in answer)
        and len({id(r) for r in answer}) == len(answer)
    ):
        return []  # it answered exactly the merge (one read decodes equal bytes once)
    held = newest_per_slot(answer)
    out: list[Record] = []
    for slot, record in merged.items():
        mine = held.get(slot)
        if mine is None or mine.seq < record.seq:
            out.append(record)
    return out
