"""Falling back along the public ranking: when every player agrees the referee failed.

DESIGN.md, "Fair play": the ranking is an ordered list every player computes alike;
when #1 fails, #2. Each attempt is its own round, with its own match id (``M``,
``M.1``, ``M.2`` ...), its own commit-reveal (so a player who makes #1 fail cannot
know who comes next) and its own records. A round's referee has failed, for everyone,
when the records of that round show one of:

- ``refused``: the referee signed a refusal that names nobody as disagreeing
  (a refusal naming players who disagreed is a dispute between the players, which
  another referee would refuse the same way: nobody falls back from it);
- ``aborted``: the referee signed an ``aborted`` outcome (a player never joined);
- ``timed_out``: every player of the match signed a ``match_timeout`` statement naming
  that referee (it could not be reached, refused without signing, or vanished).

The next round's referee is rank 1 of its fresh ranking among referees that have not
failed the match. Sans-IO: records in, a verdict out.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from fairdht.errors import UsageError
from fairdht.identity.keys import SigningKey
from fairdht.records.envelope import Record, sign_record
from fairdht.records.kinds.match import (
    ANSWER_KIND,
    TIMEOUT_KIND,
    MatchAnswer,
    RefereeTimeout,
    match_id_of,
    match_subkey,
)
from fairdht.records.kinds.outcome import OUTCOME_KIND, MatchOutcome
from fairdht.records.kinds.referee import MAX_GAME_ID

__all__ = ["dispute", "referee_failed", "round_id", "sign_timeout"]


def round_id(match_id: str, attempt: int) -> str:
    """The match id of attempt ``attempt`` (0 is the match id itself)."""
    rid = match_id if attempt == 0 else f"{match_id}.{attempt}"
    if len(rid) > MAX_GAME_ID:
        raise UsageError(f"match id too long for fallback round {attempt}")
    return rid


def sign_timeout(
    key: SigningKey, network: str, round_match: str, referee: bytes, reason: str, *, now: float
) -> Record:
    """A player's signed statement that ``referee`` failed round ``round_match``."""
    body = RefereeTimeout(referee=referee, reason=reason)
    return sign_record(
        key, TIMEOUT_KIND, network, match_subkey(TIMEOUT_KIND, round_match), body, now=now
    )


def referee_failed(
    records: Iterable[Record], *, round_match: str, referee: bytes, players: Collection[bytes]
) -> str | None:
    """Why ``referee`` failed round ``round_match`` as its records show, or None."""
    wanted = frozenset(players)
    timed_out: set[bytes] = set()
    for record in records:
        if record.withdrawn:
            continue
        if record.kind == OUTCOME_KIND:
            outcome = record.body_as(MatchOutcome)
            if outcome.match_id != round_match or record.author != referee:
                continue
            if outcome.status == "aborted":
                return "aborted"
            continue
        if match_id_of(record) != round_match:
            continue
        if record.kind == ANSWER_KIND and record.author == referee:
            answer = record.body_as(MatchAnswer)
            if not answer.accepted and not answer.disagreed:
                return "refused"
        elif (
            record.kind == TIMEOUT_KIND
            and record.author in wanted
            and record.body_as(RefereeTimeout).referee == referee
        ):
            timed_out.add(record.author)
    return "timed_out" if wanted and timed_out == wanted else None


def dispute(records: Iterable[Record], *, round_match: str, referee: bytes) -> MatchAnswer | None:
    """The referee's signed refusal naming disagreeing players, if it made one."""
    for record in records:
        if record.kind != ANSWER_KIND or record.withdrawn or record.author != referee:
            continue
        if match_id_of(record) != round_match:
            continue
        answer = record.body_as(MatchAnswer)
        if not answer.accepted and answer.disagreed:
            return answer
    return None
