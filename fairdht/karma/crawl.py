"""Which records a reader fetches to score some subjects: a bounded, sans-IO crawl plan.

The plan says which DHT keys to get next and takes the answers; a thin driver
(fairdht.karma.fetch) does the gets. Order (docs/karma.md, "Crawl"): the votes about
the subjects; then hop by hop from the reader and its trusted raters, each crawled
key's index and the votes about every subject it lists; the next hop is the keys the
crawled ones up-voted. Keys at the last hop are crawled only if they voted on a
subject, so their budgets can be checked. At most ``policy.max_records`` records are
taken in (an empty answer counts as one), so the work per score is bounded.
"""

from __future__ import annotations

from collections import Counter, defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence

from fairdht.karma.policy import KarmaPolicy
from fairdht.karma.votes import MergedVotes, Slot, merge_votes
from fairdht.records.envelope import Record
from fairdht.records.kinds.karma import (
    INDEX_KIND,
    MAX_INDEX_SUBJECTS,
    SUBJECT_BYTES,
    VOTE_KIND,
    KarmaIndexPage,
    index_key,
    vote_key,
)

__all__ = ["CrawlPlan", "index_subjects"]


def index_subjects(records: Iterable[Record], voter: bytes) -> list[bytes]:
    """The subjects listed by ``voter``'s newest index version (pages sharing the top seq)."""
    pages = [r for r in records if r.kind == INDEX_KIND and r.author == voter and not r.withdrawn]
    if not pages:
        return []
    version = max(r.seq for r in pages)
    current = sorted((r for r in pages if r.seq == version), key=lambda r: r.subkey)
    out: list[bytes] = []
    seen: set[bytes] = set()
    for page in current:
        body = page.body_as(KarmaIndexPage)
        if page.subkey[0] >= body.pages:
            continue
        for subject in body.subjects:
            if subject not in seen and len(out) < MAX_INDEX_SUBJECTS:
                seen.add(subject)
                out.append(subject)
    return out


class CrawlPlan:
    """A bounded breadth-first crawl of the vote graph around a reader (no I/O inside)."""

    def __init__(
        self,
        *,
        network: str,
        reader: bytes,
        subjects: Iterable[bytes],
        policy: KarmaPolicy,
        now: float,
        trusted: frozenset[bytes] = frozenset(),
        distrusted: frozenset[bytes] = frozenset(),
        high_water: Mapping[Slot, int] | None = None,
    ) -> None:
        self.network = network
        self.policy = policy
        self.now = now
        self.targets = list(dict.fromkeys(subjects))
        self.distrusted = (distrusted | policy.distrusted) - {reader}
        self.high_water = dict(high_water or {})
        self.fetched = 0  # records taken in, at most max_records (an empty answer counts one)
        self.dropped: Counter[str] = Counter()
        self._records: dict[bytes, Record] = {}  # raw -> record, every vote taken in
        self._asked: dict[bytes, tuple[str, bytes]] = {}  # DHT key -> ("vote"|"index", key)
        self._queue: deque[bytes] = deque()
        self._indexes: dict[bytes, list[bytes]] = {}  # voter -> subjects of its index
        seeds = ({reader} | trusted | policy.trusted) - self.distrusted
        self._visited: set[bytes] = set(seeds)
        self._frontier = sorted(seeds)
        self._crawling: list[bytes] = []
        self._level = 0
        self._phase = "targets"
        self.done = False

    def next_keys(self, limit: int = 16) -> list[bytes]:
        """Up to ``limit`` DHT keys to get next; empty once the crawl is done."""
        while not self._queue and not self.done:
            self._advance()
        if self.fetched >= self.policy.max_records:
            self.done = True
            self._queue.clear()
        out: list[bytes] = []
        while self._queue and len(out) < limit:
            out.append(self._queue.popleft())
        return out

    def feed(self, key: bytes, records: Sequence[Record]) -> None:
        """Take the answer of one get; records that do not belong under ``key`` are dropped."""
        what, about = self._asked.get(key, ("", b""))
        room = max(0, self.policy.max_records - self.fetched)
        if not what:
            self.dropped["unasked"] += len(records)
            return
        if len(records) > room:
            self.dropped["over_limit"] += len(records) - room
            records = records[:room]
        self.fetched = min(self.policy.max_records, self.fetched + max(1, len(records)))
        kind = VOTE_KIND if what == "vote" else INDEX_KIND
        kept = []
        for record in records:
            if record.kind != kind or record.key != key:
                self.dropped["wrong_key"] += 1
            else:
                kept.append(record)
        if what == "index":
            self._indexes[about] = index_subjects(kept, about)
        else:
            for record in kept:
                self._records[record.raw] = record

    def records(self) -> list[Record]:
        """Every vote record taken in so far."""
        return list(self._records.values())

    def merged(self) -> MergedVotes:
        """The live votes taken in, merged per slot at ``now`` (replays dropped)."""
        return merge_votes(self._records.values(), now=self.now, high_water=self.high_water)

    def _ask(self, what: str, about: bytes) -> None:
        key = vote_key(self.network, about) if what == "vote" else index_key(self.network, about)
        if key not in self._asked:
            self._asked[key] = (what, about)
            self._queue.append(key)

    def _target_voters(self) -> set[bytes]:
        targets = set(self.targets)
        return {r.author for r in self._records.values() if r.subkey[:SUBJECT_BYTES] in targets}

    def _advance(self) -> None:
        """Move to the next phase, queueing its keys; sets ``done`` after the last hop."""
        if self._phase == "targets":
            for subject in self.targets:
                self._ask("vote", subject)
            self._phase = "index"
        elif self._phase == "index":
            crawl = self._frontier
            if self._level >= self.policy.max_hops:
                # The last hop's out-edges lead past the horizon; crawl only the voters
                # on the subjects, whose other votes decide their budgets.
                voters = self._target_voters()
                crawl = [k for k in crawl if k in voters]
            # Voters on the subjects first, so the record bound cuts the least useful.
            voters = self._target_voters()
            for key in sorted(crawl, key=lambda k: (k not in voters, k)):
                self._ask("index", key)
            self._crawling = crawl
            self._phase = "votes"
        elif self._phase == "votes":
            for key in self._crawling:
                for subject in self._indexes.get(key, []):
                    self._ask("vote", subject)
            self._phase = "next"
        elif self._phase == "next":
            if self._level >= self.policy.max_hops:
                self.done = True
                return
            self._frontier = self._next_frontier()
            self._level += 1
            self._phase = "index" if self._frontier else "done"
        else:
            self.done = True

    def _next_frontier(self) -> list[bytes]:
        """Keys the current frontier up-voted on balance, not yet visited."""
        frontier = set(self._frontier)
        net: defaultdict[tuple[bytes, bytes], float] = defaultdict(float)
        for vote in self.merged().votes:
            if vote.voter in frontier:
                net[(vote.voter, vote.subject)] += self.policy.weight(vote.action)
        nxt = sorted({s for (_, s), w in net.items() if w > 0} - self._visited - self.distrusted)
        self._visited.update(nxt)
        return nxt
