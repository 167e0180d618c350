"""Casting a vote: the vote (or withdrawal) record, and the voter's updated index pages.

``put`` and ``get`` are normally ``DHTNode.put`` and ``DHTNode.get``; nothing here
opens a socket or reads a clock (``now`` is passed in).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from fairdht.identity.keys import SigningKey
from fairdht.karma.crawl import index_subjects
from fairdht.karma.votes import merge_votes
from fairdht.records.envelope import Record, sign_record, sign_withdrawal
from fairdht.records.kinds.karma import (
    INDEX_KIND,
    INDEX_PAGE_SUBJECTS,
    MAX_INDEX_SUBJECTS,
    VOTE_KIND,
    KarmaIndexPage,
    KarmaVote,
    index_key,
    vote_key,
    vote_subkey,
)

__all__ = ["CastResult", "cast_vote", "index_pages", "updated_index", "vote_record"]

PutFn = Callable[[Record], Awaitable[object]]
GetFn = Callable[[bytes], Awaitable[list[Record]]]


def vote_record(
    key: SigningKey,
    *,
    network: str,
    subject: bytes,
    action: str,
    context: str = "",
    evidence: bytes = b"",
    withdraw: bool = False,
    now: float,
    ttl: int | None = None,
    seq: int | None = None,
) -> Record:
    """Sign a vote, or with ``withdraw`` a tombstone for the same (subject, action, context)."""
    body = KarmaVote(action=action, context=context, evidence=evidence)  # checks the action
    subkey = vote_subkey(subject, body.action, body.context)
    if withdraw:
        return sign_withdrawal(key, VOTE_KIND, network, subkey, now=now, ttl=ttl, seq=seq)
    return sign_record(key, VOTE_KIND, network, subkey, body, now=now, ttl=ttl, seq=seq)


def index_pages(
    key: SigningKey, *, network: str, subjects: Sequence[bytes], now: float, seq: int | None = None
) -> list[Record]:
    """Sign the voter's index: pages of up to 24 subjects, all with one seq (one version)."""
    subjects = list(dict.fromkeys(subjects))[:MAX_INDEX_SUBJECTS]
    chunks = [
        tuple(subjects[i : i + INDEX_PAGE_SUBJECTS])
        for i in range(0, len(subjects), INDEX_PAGE_SUBJECTS)
    ] or [()]
    seq = int(now * 1000) if seq is None else seq
    return [
        sign_record(
            key,
            INDEX_KIND,
            network,
            bytes([page]),
            KarmaIndexPage(pages=len(chunks), subjects=chunk),
            now=now,
            seq=seq,
        )
        for page, chunk in enumerate(chunks)
    ]


def updated_index(current: Sequence[bytes], subject: bytes, *, keep: bool) -> list[bytes]:
    """The index after voting on ``subject``: newest first, the oldest dropped past the bound."""
    rest = [s for s in current if s != subject]
    return ([subject, *rest] if keep else rest)[:MAX_INDEX_SUBJECTS]


@dataclass(frozen=True, slots=True)
class CastResult:
    """The vote record that was put, what ``put`` answered, and the index pages put."""

    record: Record
    put_result: object
    index_pages: int
    index_subjects: int


async def cast_vote(
    put: PutFn,
    get: GetFn,
    key: SigningKey,
    *,
    network: str,
    subject: bytes,
    action: str,
    context: str = "",
    evidence: bytes = b"",
    withdraw: bool = False,
    now: float,
) -> CastResult:
    """Put a vote (or its withdrawal), then re-sign and put the voter's index.

    After a withdrawal the subject stays in the index while the voter holds another
    live vote about it (another action or context).
    """
    record = vote_record(
        key,
        network=network,
        subject=subject,
        action=action,
        context=context,
        evidence=evidence,
        withdraw=withdraw,
        now=now,
    )
    put_result = await put(record)
    me = key.public_key.raw
    held = [r for r in await get(index_key(network, me)) if r.author == me]
    current = index_subjects(held, me)
    # A new index version must be strictly newer than every page held, even within 1 ms.
    seq = max([int(now * 1000), *(r.seq + 1 for r in held)])
    keep = not withdraw
    if withdraw:
        about = [r for r in await get(vote_key(network, subject)) if r.author == me]
        merged = merge_votes([*about, record], now=now)
        keep = any(v.voter == me for v in merged.votes)
    subjects = updated_index(current, subject, keep=keep)
    pages = index_pages(key, network=network, subjects=subjects, now=now, seq=seq)
    await asyncio.gather(*(put(page) for page in pages))
    return CastResult(record, put_result, len(pages), len(subjects))
