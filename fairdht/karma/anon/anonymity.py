"""How many players public records show could have cast an anonymous vote (thin driver).

The vote names (referee, period, subject, action). Anyone can list the referee's matches
with the subject in that period from public records: the referee's attributed
``session_completed`` / ``cheating`` votes on the subject carry the match id and, as
evidence, its signed outcome. Every other player of those completed matches is a
candidate voter. For a vote on the referee itself, the candidates are the players of
every match the referee's index leads to. The count is a lower bound (what a reader can
find), so holding a vote back until it is large enough errs on the safe side.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fairdht.errors import FairDHTError, RecordError
from fairdht.records.envelope import Record, decode_record
from fairdht.records.kinds.anon_key import period_of
from fairdht.records.kinds.karma import (
    INDEX_KIND,
    VOTE_KIND,
    KarmaIndexPage,
    KarmaVote,
    index_key,
    vote_key,
)
from fairdht.records.kinds.match import match_key
from fairdht.records.kinds.outcome import OUTCOME_KIND, MatchOutcome

__all__ = ["MAX_INDEX_SUBJECTS_READ", "anonymity_set"]

GetFn = Callable[[bytes], Awaitable[list[Record]]]

# For a vote on a referee: how many of the subjects in its index are read (one get each).
MAX_INDEX_SUBJECTS_READ = 48
_OUTCOME_VOTES = ("session_completed", "cheating")


async def _get(get: GetFn, key: bytes) -> list[Record]:
    try:
        return await get(key)
    except FairDHTError:
        return []


def _outcome(raw: bytes, referee: bytes, period: int) -> MatchOutcome | None:
    try:
        record = decode_record(raw)
    except RecordError:
        return None
    return _checked(record, referee, period)


def _checked(record: Record, referee: bytes, period: int) -> MatchOutcome | None:
    if (
        record.kind != OUTCOME_KIND
        or record.author != referee
        or record.withdrawn
        or period_of(record.issued_at) != period
    ):
        return None
    body = record.body_as(MatchOutcome)
    return body if body.status == "completed" else None


async def _matches_with(
    get: GetFn, network: str, referee: bytes, player: bytes, period: int
) -> list[MatchOutcome]:
    """The referee's completed outcomes in ``period`` that name ``player``."""
    found: dict[str, MatchOutcome | None] = {}
    for record in await _get(get, vote_key(network, player)):
        if record.kind != VOTE_KIND or record.author != referee or record.withdrawn:
            continue
        vote = record.body_as(KarmaVote)
        if vote.action not in _OUTCOME_VOTES or period_of(record.issued_at) not in (
            period,
            period + 1,
        ):
            continue
        if vote.context not in found:
            found[vote.context] = (
                _outcome(vote.evidence, referee, period) if vote.evidence else None
            )
    missing = [m for m, o in found.items() if o is None]
    answers = await asyncio.gather(*(_get(get, match_key(network, m)) for m in missing if m))
    for match_id, records in zip([m for m in missing if m], answers, strict=True):
        for record in records:
            outcome = _checked(record, referee, period)
            if outcome is not None and outcome.match_id == match_id:
                found[match_id] = outcome
    return [o for o in found.values() if o is not None and player in o.players]


async def anonymity_set(
    get: GetFn, *, network: str, referee: bytes, subject: bytes, period: int
) -> set[bytes]:
    """The players public records show could have cast a vote on ``subject`` (a lower bound)."""
    if subject != referee:
        outcomes = await _matches_with(get, network, referee, subject, period)
        return {p for o in outcomes for p in o.players} - {subject}
    subjects: list[bytes] = []
    for record in await _get(get, index_key(network, referee)):
        if record.kind == INDEX_KIND and record.author == referee and not record.withdrawn:
            subjects.extend(record.body_as(KarmaIndexPage).subjects)
    subjects = list(dict.fromkeys(subjects))[:MAX_INDEX_SUBJECTS_READ]
    found = await asyncio.gather(
        *(_matches_with(get, network, referee, s, period) for s in subjects)
    )
    return {p for outcomes in found for o in outcomes for p in o.players} - {referee}
