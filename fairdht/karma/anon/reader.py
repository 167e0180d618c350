"""Which anonymous votes a reader counts: live, one per token, under a published key (sans-IO).

A vote counts (status ``valid``) when its token verifies, as an RFC 9474 / RSASSA-PSS
signature over ``token_message(...)`` of the vote's own fields and one-time key, under
the key its referee publishes *now* for the vote's (period, polarity). Otherwise its
status says why: ``unpublished_key`` (no such key), ``bad_token`` (forged, or under a
key that is not the one published now: a moved key voids its tokens, so per-player keys
cannot tag voters) or ``unknown_referee`` (a referee the reader gives no trust, whose
keys it did not fetch: such a vote could not count anyway).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass

from fairdht.errors import BadSignature, RecordError
from fairdht.identity import blindrsa
from fairdht.identity.blindrsa import PREFIX_LEN, BlindPublicKey
from fairdht.records.envelope import Record, check_time
from fairdht.records.kinds.anon_key import ANON_KEY_KIND, AnonKey, split_anon_key_subkey
from fairdht.records.kinds.anon_vote import ANON_VOTE_KIND, AnonVote, polarity, token_message

__all__ = ["ANON_STATUSES", "BackedVote", "backed_votes", "published_keys"]

ANON_STATUSES = ("valid", "unpublished_key", "bad_token", "unknown_referee")


@dataclass(frozen=True, slots=True)
class BackedVote:
    """One anonymous vote as a reader sees it: its one-time key, what it says, who backs it."""

    vote_key: bytes
    subject: bytes
    referee: bytes
    period: int
    action: str
    issued_at: int
    status: str  # one of ANON_STATUSES


def published_keys(
    records: Iterable[Record], *, now: float
) -> dict[tuple[bytes, int, str], BlindPublicKey]:
    """(referee, period, polarity) -> the key each referee's live record publishes now."""
    newest: dict[tuple[bytes, int, str], Record] = {}
    for record in records:
        if record.kind != ANON_KEY_KIND:
            continue
        try:
            check_time(record, now)
            period, sign = split_anon_key_subkey(record.subkey)
        except RecordError:
            continue
        slot = (record.author, period, sign)
        held = newest.get(slot)
        if held is None or record.newer_than(held):
            newest[slot] = record
    return {slot: r.body_as(AnonKey).public_key() for slot, r in newest.items() if not r.withdrawn}


def backed_votes(
    records: Iterable[Record],
    keys: Mapping[tuple[bytes, int, str], BlindPublicKey],
    *,
    now: float,
    referees: Set[bytes] | None = None,
) -> list[BackedVote]:
    """Check every live anonymous vote in ``records``, one entry per (one-time key, token).

    With ``referees``, only votes backed by those referees are checked; the others get
    ``unknown_referee`` (their keys were not fetched).
    """
    newest: dict[tuple[bytes, bytes], Record] = {}
    for record in records:
        if record.kind != ANON_VOTE_KIND or record.withdrawn:
            continue
        try:
            check_time(record, now)
        except RecordError:
            continue
        # Newest per (one-time key, token hash). A copy of a token under another key
        # is kept apart and fails to verify (the token signs its key), so it cannot
        # crowd out the vote it copied: one token still makes at most one valid vote.
        held = newest.get(record.slot)
        if held is None or record.newer_than(held):
            newest[record.slot] = record
    out = []
    for record in newest.values():
        body = record.body_as(AnonVote)
        subject = record.subkey[:32]
        key = keys.get((body.referee, body.period, polarity(body.action)))
        status = "unpublished_key"
        if referees is not None and body.referee not in referees:
            status = "unknown_referee"
        elif key is not None:
            msg = token_message(
                record.network, body.referee, body.period, subject, body.action, record.author
            )
            try:
                blindrsa.verify(key, body.token[:PREFIX_LEN] + msg, body.token[PREFIX_LEN:])
                status = "valid"
            except BadSignature:
                status = "bad_token"
        out.append(
            BackedVote(
                record.author,
                subject,
                body.referee,
                body.period,
                body.action,
                record.issued_at,
                status,
            )
        )
    out.sort(key=lambda v: (v.subject, v.referee, v.period, v.vote_key))
    return out
