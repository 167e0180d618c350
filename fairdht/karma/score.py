"""A reader's view of the votes, and each subject's score, color and explanation.

Score model (docs/karma.md, "Score model"): a subject's score is the sum over its
counted votes of (the voter's share of the reader's trust) x (the reader's weight of
the action), with one voter's net opinion of one subject capped; a net-negative
opinion counts only from a voter the reader trusts directly (itself, its trusted
raters, the keys it up-voted), one hop and never transitively.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fairdht.karma.policy import KarmaPolicy
from fairdht.karma.trust import personalized_trust
from fairdht.karma.votes import Slot, Vote, over_budget

__all__ = [
    "STATUSES",
    "ExplainedVote",
    "KarmaScore",
    "KarmaView",
    "build_view",
    "karma_of",
    "score_json",
    "score_subject",
]

# Why a vote did or did not move the score, as shown by `karma show --explain`.
STATUSES = ("counted", "over_budget", "distrusted", "unknown_voter", "untrusted_negative")


@dataclass(frozen=True, slots=True)
class ExplainedVote:
    """One vote about the subject, its voter's trust weight and what it added to the score."""

    voter: bytes
    action: str
    context: str
    issued_at: int
    weight: float  # the voter's share of the reader's trust
    contribution: float  # what this vote added to the score (0 unless counted)
    status: str  # one of STATUSES


@dataclass(frozen=True, slots=True)
class KarmaScore:
    """A subject's score and color in one reader's view, with the votes that made it."""

    subject: bytes
    score: float
    color: str
    votes: tuple[ExplainedVote, ...]


@dataclass(frozen=True, slots=True)
class KarmaView:
    """Everything a reader needs to score subjects: its policy, trust and the votes it knows."""

    reader: bytes
    policy: KarmaPolicy
    trust: Mapping[bytes, float]
    direct: frozenset[bytes]  # keys whose negative opinions count (one hop)
    distrusted: frozenset[bytes]
    votes_by_subject: Mapping[bytes, tuple[Vote, ...]]
    excluded_slots: frozenset[Slot]  # over each voter's budget
    iterations: int

    def trust_share(self, keys: Iterable[bytes]) -> float:
        """The share of the reader's trust held by ``keys`` (0 to 1)."""
        return sum(self.trust.get(k, 0.0) for k in set(keys))


def _opinions(
    votes: Iterable[Vote], policy: KarmaPolicy, skip: frozenset[Slot], distrusted: frozenset[bytes]
) -> dict[tuple[bytes, bytes], tuple[float, float]]:
    """(voter, subject) -> (raw sum of weights, capped net) over the counted votes."""
    raw: dict[tuple[bytes, bytes], float] = defaultdict(float)
    for vote in votes:
        if vote.slot in skip or vote.voter in distrusted:
            continue
        raw[(vote.voter, vote.subject)] += policy.weight(vote.action)
    cap = policy.subject_cap
    return {pair: (total, max(-cap, min(cap, total))) for pair, total in raw.items()}


def build_view(
    *,
    reader: bytes,
    votes: Iterable[Vote],
    policy: KarmaPolicy,
    trusted: frozenset[bytes] = frozenset(),
    distrusted: frozenset[bytes] = frozenset(),
) -> KarmaView:
    """Compute ``reader``'s trust over ``votes`` (merged live votes) under ``policy``.

    ``trusted`` (the trust store's ``karma`` role) and ``distrusted`` are joined with
    the policy's own lists; the reader itself is never distrusted.
    """
    all_votes = tuple(votes)
    distrust = (distrusted | policy.distrusted) - {reader}
    raters = (trusted | policy.trusted) - distrust
    skip = over_budget(all_votes, limit=policy.budget_votes, window=policy.budget_window)
    opinions = _opinions(all_votes, policy, skip, distrust)
    edges: dict[bytes, dict[bytes, float]] = defaultdict(dict)
    for (voter, subject), (_, net) in opinions.items():
        if net > 0:
            edges[voter][subject] = net
    seeds = {reader} | raters
    result = personalized_trust(
        edges,
        seeds,
        restart=policy.restart,
        max_iterations=policy.max_iterations,
        max_hops=policy.max_hops,
        excluded=distrust,
    )
    by_subject: dict[bytes, list[Vote]] = defaultdict(list)
    for vote in all_votes:
        by_subject[vote.subject].append(vote)
    return KarmaView(
        reader=reader,
        policy=policy,
        trust=result.trust,
        direct=frozenset(seeds | set(edges.get(reader, {}))),
        distrusted=distrust,
        votes_by_subject={s: tuple(v) for s, v in by_subject.items()},
        excluded_slots=skip,
        iterations=result.iterations,
    )


def score_subject(view: KarmaView, subject: bytes) -> KarmaScore:
    """Score ``subject`` in ``view``, explaining every vote about it."""
    policy = view.policy
    votes = view.votes_by_subject.get(subject, ())
    opinions = _opinions(votes, policy, view.excluded_slots, view.distrusted)
    explained = []
    for vote in votes:
        weight = view.trust.get(vote.voter, 0.0)
        status, contribution = "counted", 0.0
        if vote.voter in view.distrusted:
            status = "distrusted"
        elif vote.slot in view.excluded_slots:
            status = "over_budget"
        elif weight <= 0.0:
            status = "unknown_voter"
        else:
            raw, net = opinions[(vote.voter, subject)]
            if net < 0 and vote.voter not in view.direct:
                status = "untrusted_negative"
            else:
                # Scale each vote so a capped opinion's votes sum to the capped net.
                scale = net / raw if raw != 0 and abs(raw) > policy.subject_cap else 1.0
                contribution = weight * policy.weight(vote.action) * scale
        explained.append(
            ExplainedVote(
                voter=vote.voter,
                action=vote.action,
                context=vote.context,
                issued_at=vote.issued_at,
                weight=weight,
                contribution=contribution,
                status=status,
            )
        )
    explained.sort(key=lambda e: (-abs(e.contribution), -e.weight, e.voter, e.action, e.context))
    score = sum(e.contribution for e in explained)
    return KarmaScore(subject, score, policy.color(score), tuple(explained))


def karma_of(view: KarmaView, subject: bytes) -> tuple[float, str]:
    """(score, color) of ``subject`` in ``view``: what server lists and referee picks call."""
    result = score_subject(view, subject)
    return result.score, result.color


def score_json(score: KarmaScore, *, explain: bool) -> dict[str, Any]:
    """The JSON document of a score (``fairdht karma show --json``, ``GET /api/karma``)."""
    doc: dict[str, Any] = {
        "subject": score.subject.hex(),
        "score": round(score.score, 6),
        "color": score.color,
        "votes_counted": sum(1 for v in score.votes if v.status == "counted"),
    }
    if explain:
        doc["votes"] = [
            {
                "voter": v.voter.hex(),
                "action": v.action,
                "context": v.context,
                "issued_at": v.issued_at,
                "weight": round(v.weight, 6),
                "contribution": round(v.contribution, 6),
                "status": v.status,
            }
            for v in score.votes
        ]
    return doc
