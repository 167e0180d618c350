"""The thin driver of a crawl plan: do its gets, feed the answers, build the reader's view.

``get`` is normally ``DHTNode.get`` (validated records under a key), best with
``include_withdrawn=True`` so withdrawals raise the reader's replay marks; nothing
here opens a socket or reads a clock, so a simulation can pass an in-memory ``get``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

from fairdht.errors import NetworkError
from fairdht.karma.anon.fetch import fetch_anon_votes
from fairdht.karma.crawl import CrawlPlan
from fairdht.karma.policy import KarmaPolicy
from fairdht.karma.score import KarmaView, build_view, with_anon_votes
from fairdht.karma.votes import Slot
from fairdht.records.envelope import Record

__all__ = ["FetchedView", "GetFn", "crawl", "fetch_view"]

GetFn = Callable[[bytes], Awaitable[list[Record]]]


@dataclass(frozen=True, slots=True)
class FetchedView:
    """A reader's view built from the network, with what the crawl cost and dropped."""

    view: KarmaView
    high_water: Mapping[Slot, int]  # newest seq seen per slot, for the reader's state
    fetched: int
    dropped: Mapping[str, int]


async def crawl(get: GetFn, plan: CrawlPlan, *, parallel: int = 8) -> None:
    """Run ``plan`` to its end, ``parallel`` gets at a time.

    A failed get in the first batch (the subjects' own votes) propagates: without
    them there is nothing to score. Later failures are counted and crawled past.
    """
    first = True
    while keys := plan.next_keys(parallel):
        answers = await asyncio.gather(*(get(key) for key in keys), return_exceptions=True)
        for key, answer in zip(keys, answers, strict=True):
            if isinstance(answer, NetworkError):
                if first:
                    raise answer
                plan.dropped[f"get_failed.{answer.code}"] += 1
                plan.feed(key, [])
            elif isinstance(answer, BaseException):
                raise answer
            else:
                plan.feed(key, answer)
        first = False


async def fetch_view(
    get: GetFn,
    *,
    network: str,
    reader: bytes,
    subjects: Iterable[bytes],
    policy: KarmaPolicy,
    now: float,
    trusted: frozenset[bytes] = frozenset(),
    distrusted: frozenset[bytes] = frozenset(),
    high_water: Mapping[Slot, int] | None = None,
    parallel: int = 8,
    anonymous: bool = True,
) -> FetchedView:
    """Crawl around ``reader`` (bounded by ``policy``) and build its view of ``subjects``.

    With ``anonymous`` the subjects' anonymous match votes are fetched and checked too
    (docs/karma.md, "Anonymous match votes").
    """
    subjects = list(subjects)
    plan = CrawlPlan(
        network=network,
        reader=reader,
        subjects=subjects,
        policy=policy,
        now=now,
        trusted=trusted,
        distrusted=distrusted,
        high_water=high_water,
    )
    await crawl(get, plan, parallel=parallel)
    merged = plan.merged()
    view = build_view(
        reader=reader,
        votes=merged.votes,
        policy=policy,
        trusted=trusted,
        distrusted=distrusted,
    )
    if anonymous:
        # After the trust is known: only trusted referees' blind keys are fetched.
        anon = await fetch_anon_votes(
            get, network=network, subjects=subjects, now=now, trust=view.trust
        )
        view = with_anon_votes(view, anon)
    dropped = dict(plan.dropped)
    for reason, count in merged.dropped.items():
        dropped[reason] = dropped.get(reason, 0) + count
    return FetchedView(view, merged.high_water, plan.fetched, dropped)
