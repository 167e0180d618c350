"""A reader's view of the votes, and each subject's score, color and explanation.

Score model (docs/karma.md, "Score model"): a subject's score is the sum over its
counted votes of (the voter's share of the reader's trust) x (the reader's weight of
the action), with one voter's net opinion of one subject capped; a net-negative
opinion counts only from a voter the reader trusts directly (itself, its trusted
raters, the keys it up-voted), one hop and never transitively.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fairdht.karma.anon.reader import BackedVote
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
    "with_anon_votes",
]

# Why a vote did or did not move the score, as shown by `karma show --explain`.
STATUSES = (
    "counted",
    "over_budget",
    "distrusted",
    "unknown_voter",
    "untrusted_negative",
    # Anonymous match votes only (docs/karma.md, "Anonymous match votes"):
    "unknown_referee",
    "unpublished_key",
    "bad_token",
)


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
    kind: str = "attributed"  # or "anonymous": a one-time key's vote, backed by a referee
    referee: bytes = b""  # the referee whose token backs an anonymous vote


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
    anon_by_subject: Mapping[bytes, tuple[BackedVote, ...]] = field(default_factory=dict)

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
    anon_votes: Iterable[BackedVote] = (),
) -> KarmaView:
    """Compute ``reader``'s trust over ``votes`` (merged live votes) under ``policy``.

    ``trusted`` (the trust store's ``karma`` role) and ``distrusted`` are joined with
    the policy's own lists; the reader itself is never distrusted. ``anon_votes``
    (checked anonymous match votes) never create trust: they are weighed by the
    reader's trust in their referees only.
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
    anon: dict[bytes, list[BackedVote]] = defaultdict(list)
    for backed in anon_votes:
        anon[backed.subject].append(backed)
    return KarmaView(
        reader=reader,
        policy=policy,
        trust=result.trust,
        direct=frozenset(seeds | set(edges.get(reader, {}))),
        distrusted=distrust,
        votes_by_subject={s: tuple(v) for s, v in by_subject.items()},
        excluded_slots=skip,
        iterations=result.iterations,
        anon_by_subject={s: tuple(v) for s, v in anon.items()},
    )


def with_anon_votes(view: KarmaView, anon_votes: Iterable[BackedVote]) -> KarmaView:
    """``view`` with ``anon_votes`` (checked anonymous votes); the trust is unchanged."""
    anon: dict[bytes, list[BackedVote]] = defaultdict(list)
    for backed in anon_votes:
        anon[backed.subject].append(backed)
    return dataclasses.replace(view, anon_by_subject={s: tuple(v) for s, v in anon.items()})


def _anonymous(view: KarmaView, subject: bytes) -> list[ExplainedVote]:
    """Explain the anonymous votes on ``subject``, each weighed by its referee's trust.

    One referee's valid votes on one subject count as their mean weight, times the
    reader's trust in that referee: together at most one attributed vote's worth from
    it (docs/karma.md), however many matches it hosted. A net-negative mean counts only
    if the referee is in the reader's direct trust, as attributed negatives do.
    """
    policy = view.policy
    votes = view.anon_by_subject.get(subject, ())
    valid: dict[bytes, list[BackedVote]] = defaultdict(list)
    for vote in votes:
        if vote.status == "valid":
            valid[vote.referee].append(vote)
    mean = {r: sum(policy.weight(v.action) for v in vs) / len(vs) for r, vs in valid.items()}
    out = []
    for vote in votes:
        weight = view.trust.get(vote.referee, 0.0)
        status, contribution = "counted", 0.0
        if vote.status != "valid":
            status = vote.status
        elif vote.referee in view.distrusted:
            status = "distrusted"
        elif weight <= 0.0:
            status = "unknown_referee"
        elif mean[vote.referee] < 0 and vote.referee not in view.direct:
            status = "untrusted_negative"
        else:
            contribution = weight * policy.weight(vote.action) / len(valid[vote.referee])
        out.append(
            ExplainedVote(
                voter=vote.vote_key,
                action=vote.action,
                context="",
                issued_at=vote.issued_at,
                weight=weight,
                contribution=contribution,
                status=status,
                kind="anonymous",
                referee=vote.referee,
            )
        )
    return out


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
    explained.extend(_anonymous(view, subject))
    explained.sort(key=lambda e: (-abs(e.contribution), -e.weight, e.voter, e.action, e.context))
    score = sum(e.contribution for e in explained)
    return KarmaScore(subject, score, policy.color(score), tuple(explained))


def karma_of(view: KarmaView, subject: bytes) -> tuple[float, str]:
    """(score, color) of ``subject`` in ``view``: what server lists and referee picks call."""
    result = score_subject(view, subject)
    return result.score, result.color


def score_json(score: KarmaScore, *, explain: bool, kinds: bool = False) -> dict[str, Any]:
    """The JSON document of a score (``fairdht karma show --json``, ``GET /api/karma``).

    With ``kinds`` each explained vote also says whether it is ``attributed`` or
    ``anonymous`` (and an anonymous one names its ``referee``), as `karma show` prints.
    """
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
            | ({"kind": v.kind} if kinds else {})
            | ({"referee": v.referee.hex()} if kinds and v.kind == "anonymous" else {})
            for v in score.votes
        ]
    return doc
