"""Votes as values: from records, merged per slot, with withdrawals, replays and budgets.

Rules (docs/karma.md, "Votes"): a voter holds one live vote per (subject, action,
context), its record slot; the newest ``seq`` of a slot wins and a withdrawal empties
the slot; a record older than a slot's high-water mark is a replay and is dropped;
only a voter's ``budget_votes`` newest votes per ``budget_window`` count.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from fairdht.errors import BadBody, RecordError
from fairdht.records.envelope import Record, check_time
from fairdht.records.kinds.karma import SUBJECT_BYTES, VOTE_KIND, KarmaVote

__all__ = ["MergedVotes", "Slot", "Vote", "merge_votes", "over_budget", "vote_from_record"]

Slot = tuple[bytes, bytes]  # (voter, subkey), the record slot of a vote


@dataclass(frozen=True, slots=True)
class Vote:
    """One live, signed vote: ``voter`` rates ``subject`` for ``action`` in ``context``."""

    voter: bytes
    subject: bytes
    action: str
    context: str
    issued_at: int
    expires_at: int
    seq: int
    subkey: bytes
    evidence: bytes = b""

    @property
    def slot(self) -> Slot:
        """(voter, subkey): one live vote per slot."""
        return (self.voter, self.subkey)

    def order_key(self) -> tuple[int, int, bytes]:
        """Newness order inside one voter's votes: issue time, then seq, then subkey."""
        return (self.issued_at, self.seq, self.subkey)


def vote_from_record(record: Record) -> Vote:
    """The vote a live ``karma_vote`` record carries; BadBody for any other record."""
    if record.kind != VOTE_KIND:
        raise BadBody(f"record of kind {record.kind!r} is not a karma vote")
    body = record.body_as(KarmaVote)
    return Vote(
        voter=record.author,
        subject=record.subkey[:SUBJECT_BYTES],
        action=body.action,
        context=body.context,
        issued_at=record.issued_at,
        expires_at=record.expires_at,
        seq=record.seq,
        subkey=record.subkey,
        evidence=body.evidence,
    )


@dataclass(frozen=True, slots=True)
class MergedVotes:
    """The live votes of a set of records, the newest seq seen per slot, and drop counts."""

    votes: tuple[Vote, ...]
    high_water: Mapping[Slot, int]
    dropped: Mapping[str, int] = field(default_factory=dict)


def merge_votes(
    records: Iterable[Record],
    *,
    now: float,
    high_water: Mapping[Slot, int] | None = None,
) -> MergedVotes:
    """Merge vote records: newest per slot wins, withdrawals empty a slot, replays drop.

    ``high_water`` maps a slot to the newest seq this reader saw before (its own
    state, fairdht.node.karma_state): an older record for that slot is a replay of a
    changed or withdrawn vote that a stale replica still serves, and is dropped.
    """
    dropped: Counter[str] = Counter()
    marks = dict(high_water or {})
    newest: dict[Slot, Record] = {}
    for record in records:
        if record.kind != VOTE_KIND:
            dropped["wrong_kind"] += 1
            continue
        try:
            check_time(record, now)
        except RecordError as exc:
            dropped[exc.code] += 1
            continue
        slot = record.slot
        if record.seq < marks.get(slot, -1):
            dropped["replayed"] += 1
            continue
        held = newest.get(slot)
        # Equal seq with other bytes is a signer's bug; keep one deterministically.
        if held is None or (record.seq, record.raw) > (held.seq, held.raw):
            if held is not None:
                dropped["superseded"] += 1
            newest[slot] = record
        else:
            dropped["superseded"] += 1
    votes = []
    for slot, record in newest.items():
        marks[slot] = max(marks.get(slot, -1), record.seq)
        if record.withdrawn:
            dropped["withdrawn"] += 1
            continue
        votes.append(vote_from_record(record))
    votes.sort(key=lambda v: (v.voter, v.order_key()))
    return MergedVotes(tuple(votes), marks, dict(dropped))


def over_budget(votes: Iterable[Vote], *, limit: int, window: int) -> frozenset[Slot]:
    """Slots of the votes beyond each voter's budget: only the ``limit`` newest per window count.

    A vote is over budget when at least ``limit`` of the same voter's votes are newer
    and issued at most ``window`` seconds after it. So every window of that length
    holds at most ``limit`` counted votes, and a voter's newest votes always count.
    """
    by_voter: dict[bytes, list[Vote]] = defaultdict(list)
    for vote in votes:
        by_voter[vote.voter].append(vote)
    out: set[Slot] = set()
    for own in by_voter.values():
        own.sort(key=Vote.order_key, reverse=True)
        lo = 0
        for i, vote in enumerate(own):
            # own[lo:i] are the newer votes issued within `window` after this one.
            while own[lo].issued_at - vote.issued_at > window:
                lo += 1
            if i - lo >= limit:
                out.add(vote.slot)
    return frozenset(out)
