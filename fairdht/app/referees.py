"""The referee flows: find a match's referees, and check one referee as a player or host.

Every party computes eligibility from the same DHT records (DESIGN.md, "Fair play"):
the matchmaker (``fairdht referees``, ``GET /api/referees``), the referee service
before it hosts a match, and every player's ``fairdht play`` before it sends an input.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from fairdht.errors import FairDHTError, NotFoundError
from fairdht.node.backoff import backoff_delay
from fairdht.records.envelope import Record
from fairdht.records.kinds.match import match_key
from fairdht.records.kinds.referee import offer_key
from fairdht.records.kinds.seat import seat_key
from fairdht.referee.clusters import ClusterFacts, cluster_of
from fairdht.referee.commit_reveal import Round, tally
from fairdht.referee.eligibility import (
    Drop,
    IneligibleReferee,
    check_eligibility,
    refusal_sentence,
)
from fairdht.referee.offers import OfferView, offer_views
from fairdht.referee.ranking import rank_key, rank_seed
from fairdht.referee.selection import Selection, select_referees

__all__ = [
    "NO_REFEREE",
    "Get",
    "RefereeSearch",
    "check_referee",
    "find_referees",
    "first_referee",
    "read_clusters",
    "referees_document",
]

Get = Callable[[bytes], Awaitable[list[Record]]]
KarmaOf = Callable[[list[bytes]], Awaitable[dict[bytes, float] | None]]

NO_REFEREE = "no eligible referee was found for this code hash"
# Seat keys are read in rank order, this many at a time, until enough referees are
# eligible: 1,000 junk offers cost a matchmaker a bounded number of lookups.
_BATCH = 16
_MAX_READ = 256


async def read_clusters(
    get: Get, network: str, keys: Collection[bytes], *, now: float
) -> dict[bytes, ClusterFacts]:
    """The cluster of each key from its own seats; a key whose read failed is left out."""
    ordered = list(dict.fromkeys(keys))
    answers = await asyncio.gather(
        *(get(seat_key(network, k)) for k in ordered), return_exceptions=True
    )
    clusters: dict[bytes, ClusterFacts] = {}
    for k, answer in zip(ordered, answers, strict=True):
        if isinstance(answer, FairDHTError):
            continue
        if isinstance(answer, BaseException):
            raise answer
        clusters[k] = cluster_of(k, answer, network=network, now=now)
    return clusters


@dataclass(frozen=True, slots=True)
class RefereeSearch:
    """What a matchmaker asked and found: the round, the players and the selection."""

    code_hash: bytes
    network: str
    match_id: str | None
    players: tuple[bytes, ...]
    round: Round | None
    selection: Selection


async def find_referees(
    get: Get,
    *,
    network: str,
    code_hash: bytes,
    players: Sequence[bytes] | None,
    match_id: str | None,
    now: float,
    count: int = 1,
    explain: bool = False,
    distrusted: Collection[bytes] = frozenset(),
    karma_of: KarmaOf | None = None,
) -> RefereeSearch:
    """Eligible referees for a match, in public rank order, filtered by the asker's view.

    ``get`` must return withdrawals too (a withdrawn seat is a fact about its author).
    """
    if match_id is not None:
        offers, match_records = await asyncio.gather(
            get(offer_key(network, code_hash)), get(match_key(network, match_id))
        )
        rnd: Round | None = tally(match_records, match_id=match_id, players=players, now=now)
    else:
        offers, rnd = await get(offer_key(network, code_hash)), None
    match_players = tuple(players or (rnd.players if rnd else ()))
    views = list(offer_views(offers))
    clusters = await _clusters_in_rank_order(
        get,
        views,
        network=network,
        code_hash=code_hash,
        players=match_players,
        match_id=match_id or "",
        nonces=rnd.nonces if rnd else (),
        now=now,
        want=_MAX_READ if explain else count + 4,
    )
    scores = None
    if karma_of is not None:
        scores = await karma_of(sorted({v.referee for v in views}))
    sel = select_referees(
        views,
        code_hash=code_hash,
        players=match_players,
        now=now,
        match_id=match_id or "",
        nonces=rnd.nonces if rnd else (),
        count=count,
        distrusted=distrusted,
        karma=None if scores is None else scores.__getitem__,
        clusters=clusters,
    )
    return RefereeSearch(code_hash, network, match_id, match_players, rnd, sel)


async def _clusters_in_rank_order(
    get: Get,
    views: list[OfferView],
    *,
    network: str,
    code_hash: bytes,
    players: Sequence[bytes],
    match_id: str,
    nonces: Collection[bytes],
    now: float,
    want: int,
) -> dict[bytes, ClusterFacts]:
    """Read seats of offers in rank order until ``want`` are eligible (or all are read).

    The rank key does not depend on who else is eligible, so reading lazily in that
    order finds the same first ``want`` referees as reading everything.
    """
    seed = rank_seed(code_hash, match_id, players, nonces)
    # Offers that fail on the offer alone need no seat read.
    plausible = sorted(
        {
            v.referee
            for v in views
            if check_eligibility(v, code_hash=code_hash, players=players, now=now) is None
        },
        key=lambda r: (rank_key(seed, r), r),
    )[:_MAX_READ]
    by_referee = {v.referee: v for v in views}
    clusters: dict[bytes, ClusterFacts] = {}
    eligible = 0
    for start in range(0, len(plausible), _BATCH):
        batch = plausible[start : start + _BATCH]
        clusters.update(await read_clusters(get, network, batch, now=now))
        for referee in batch:
            facts = clusters.get(referee)
            why = check_eligibility(
                by_referee[referee],
                code_hash=code_hash,
                players=players,
                now=now,
                match_id=match_id,
                facts=facts,
                need_facts=True,
            )
            eligible += why is None
        if eligible >= want:
            break
    return clusters


async def check_referee(
    get: Get,
    *,
    network: str,
    code_hash: bytes,
    referee: bytes,
    players: Collection[bytes],
    match_id: str,
    now: float,
) -> OfferView:
    """The referee's live offer if it may referee this match; IneligibleReferee otherwise.

    What a player runs before sending anything to a referee, and what a referee runs
    on itself before hosting: the same rule as the matchmaker's, from the DHT.
    """
    offers, facts = await asyncio.gather(
        get(offer_key(network, code_hash)), read_clusters(get, network, [referee], now=now)
    )
    view = next(
        (v for v in offer_views(offers) if v.referee == referee and v.code_hash == code_hash),
        None,
    )
    if view is None:
        raise IneligibleReferee(
            f"referee {referee.hex()[:16]} has no live offer for this code hash"
        )
    why = check_eligibility(
        view,
        code_hash=code_hash,
        players=players,
        now=now,
        match_id=match_id,
        facts=facts.get(referee),
        need_facts=True,
    )
    # A full offer still serves the match that made it full; the player asks anyway.
    if why is not None and why not in (Drop.FULL,):
        raise IneligibleReferee(refusal_sentence(referee, why))
    return view


def referees_document(search: RefereeSearch, *, explain: bool) -> dict[str, Any]:
    """The JSON document of ``fairdht referees --json`` and ``GET /api/referees``."""
    rnd, sel = search.round, search.selection
    doc: dict[str, Any] = {
        "code_hash": search.code_hash.hex(),
        "network": search.network,
        "match": search.match_id,
        "players": [p.hex() for p in search.players],
        "seed": sel.seed.hex(),
        "nonces": 0 if rnd is None else len(rnd.nonces),
        "reveal_deadline": None if rnd is None else rnd.deadline,
        "missing_commits": [] if rnd is None else [p.hex() for p in rnd.missing_commits],
        "pending_reveals": [] if rnd is None else [p.hex() for p in rnd.pending_reveals],
        "missing_reveals": [] if rnd is None else [p.hex() for p in rnd.missing_reveals],
        "referees": [c.to_json() for c in sel.referees],
    }
    if explain:
        doc["candidates"] = [
            {**c.to_json(), "status": c.status.value, "reason": c.reason} for c in sel.candidates
        ]
    if not sel.referees:
        doc["error"] = NO_REFEREE
    return doc


async def first_referee(
    get: Get,
    *,
    network: str,
    code_hash: bytes,
    players: Sequence[bytes],
    match_id: str,
    deadline: float,
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    rng: random.Random | None = None,
    exclude: Collection[bytes] = (),
) -> bytes:
    """Rank 1 of the match's public ranking, asking again with backoff until ``deadline`` s.

    The public ranking (eligibility and rank, no karma or trust filter) is what every
    player computes alike, so all players of a match pick the same referee. With none
    eligible by the deadline: NotFoundError (exit 1) with one sentence. Referees in
    ``exclude`` (those that failed this match, fairdht.referee.fallback) are skipped.
    """
    rng = rng or random.Random()
    start = clock()
    attempt = 0
    while True:
        search = await find_referees(
            get,
            network=network,
            code_hash=code_hash,
            players=players,
            match_id=match_id,
            now=clock(),
            count=1 + len(exclude),
        )
        left_in_ranking = [
            c.view.referee for c in search.selection.ranking if c.view.referee not in exclude
        ]
        if left_in_ranking:
            return left_in_ranking[0]
        left = start + deadline - clock()
        if left <= 0:
            raise NotFoundError(f"{NO_REFEREE} within {deadline:g} s")
        await sleep(min(left, backoff_delay(attempt, base=1.0, cap=15.0, rng=rng)))
        attempt += 1
