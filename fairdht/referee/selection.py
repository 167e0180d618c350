"""Referee selection: eligibility, then the public ranking, then the asker's own filters.

Order matters (DESIGN.md, "Referees"): the first two steps are pure functions of
public inputs, so every node agrees on who is eligible and on each one's rank; only
then does the asker drop keys it distrusts or whose karma is negative in its own
view. A filtered referee keeps its rank, so ranks stay comparable between nodes.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from fairdht.referee.clusters import ClusterFacts
from fairdht.referee.eligibility import check_eligibility
from fairdht.referee.offers import OfferView
from fairdht.referee.ranking import rank_order, rank_seed

__all__ = ["Candidate", "Filter", "Selection", "Status", "select_referees"]


class Status(StrEnum):
    """What selection did with an offer."""

    KEPT = "kept"
    DROPPED = "dropped"
    FILTERED = "filtered"


class Filter(StrEnum):
    """Why the asker's own view filtered an eligible referee."""

    DISTRUSTED = "distrusted"
    NEGATIVE_KARMA = "negative_karma"


@dataclass(frozen=True, slots=True)
class Candidate:
    """One offer with its fate: status, reason, rank among the eligible, karma."""

    view: OfferView
    status: Status
    reason: str
    rank: int | None
    karma: float | None

    def to_json(self) -> dict[str, Any]:
        """One referee as ``fairdht referees --json`` and ``GET /api/referees`` list it."""
        return {
            "referee": self.view.referee.hex(),
            "endpoint": self.view.offer.endpoint,
            "game": self.view.offer.game,
            "rank": self.rank,
            "karma": self.karma,
            "capacity": self.view.offer.capacity,
            "load": self.view.offer.load,
            "expires_at": self.view.expires_at,
        }


@dataclass(frozen=True, slots=True)
class Selection:
    """The outcome of a selection: the chosen referees and every candidate explained."""

    seed: bytes
    referees: tuple[Candidate, ...]
    candidates: tuple[Candidate, ...]

    @property
    def ranking(self) -> tuple[Candidate, ...]:
        """Every eligible referee in public rank order, the asker's filters ignored.

        This is the list players fall back along (#1, then #2, ...): it depends on
        public records only, so every player computes the same one.
        """
        return tuple(sorted((c for c in self.candidates if c.rank is not None), key=_rank))


def _rank(c: Candidate) -> int:
    return c.rank or 0


def select_referees(
    offers: Iterable[OfferView],
    *,
    code_hash: bytes,
    players: Collection[bytes],
    now: float,
    match_id: str = "",
    nonces: Collection[bytes] = (),
    count: int = 1,
    distrusted: Collection[bytes] = frozenset(),
    karma: Callable[[bytes], float] | None = None,
    clusters: Mapping[bytes, ClusterFacts] | None = None,
) -> Selection:
    """Choose up to ``count`` referees for a match of ``players`` running ``code_hash``.

    ``clusters`` holds each referee's cluster from its own seats; when given, an offer
    whose referee is not in it is dropped (``cluster_unread``), never trusted.
    """
    newest: dict[bytes, OfferView] = {}
    for view in offers:
        held = newest.get(view.referee)
        if held is None or view.expires_at > held.expires_at:
            newest[view.referee] = view
    dropped: list[Candidate] = []
    eligible: list[OfferView] = []
    for view in newest.values():
        why = check_eligibility(
            view,
            code_hash=code_hash,
            players=players,
            now=now,
            match_id=match_id,
            facts=None if clusters is None else clusters.get(view.referee),
            need_facts=clusters is not None,
        )
        if why is None:
            eligible.append(view)
        else:
            dropped.append(Candidate(view, Status.DROPPED, why.value, None, None))
    seed = rank_seed(code_hash, match_id, players, nonces)
    bad_keys = frozenset(distrusted)
    ranked: list[Candidate] = []
    for rank, view in enumerate(rank_order(seed, eligible, lambda v: v.referee), start=1):
        score = None if karma is None else float(karma(view.referee))
        if view.referee in bad_keys:
            ranked.append(Candidate(view, Status.FILTERED, Filter.DISTRUSTED.value, rank, score))
        elif score is not None and score < 0:
            ranked.append(
                Candidate(view, Status.FILTERED, Filter.NEGATIVE_KARMA.value, rank, score)
            )
        else:
            ranked.append(Candidate(view, Status.KEPT, "eligible", rank, score))
    chosen = tuple(c for c in ranked if c.status is Status.KEPT)[: max(count, 0)]
    dropped.sort(key=lambda c: c.view.referee)
    return Selection(seed=seed, referees=chosen, candidates=(*ranked, *dropped))
