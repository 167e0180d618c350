"""Thin driver: fetch the anonymous votes on some subjects and their referees' blind keys.

One get per subject (its anonymous-karma key) and one per referee those votes name that
the reader trusts at all (its blind keys), most trusted first: votes naming referees of
no weight could not count, so naming a thousand fake referees costs the reader no
lookup. A failed get counts as an empty answer, so a reader without them scores from
attributed votes alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping

from fairdht.errors import NetworkError
from fairdht.karma.anon.reader import BackedVote, backed_votes, published_keys
from fairdht.records.envelope import Record
from fairdht.records.kinds.anon_key import anon_key_key
from fairdht.records.kinds.anon_vote import ANON_VOTE_KIND, AnonVote, anon_vote_key

__all__ = ["MAX_REFEREES", "fetch_anon_votes"]

GetFn = Callable[[bytes], Awaitable[list[Record]]]

# Keys of at most this many referees are fetched per score (most backed votes first).
MAX_REFEREES = 64


async def _get(get: GetFn, key: bytes) -> list[Record]:
    try:
        return await get(key)
    except NetworkError:
        return []


async def fetch_anon_votes(
    get: GetFn,
    *,
    network: str,
    subjects: Iterable[bytes],
    now: float,
    trust: Mapping[bytes, float],
) -> list[BackedVote]:
    """The checked anonymous votes on ``subjects`` (every status, for the explanation).

    ``trust`` is the reader's trust per key: only referees with a positive share have
    their keys fetched (at most MAX_REFEREES, highest trust first).
    """
    wanted = list(dict.fromkeys(subjects))
    answers = await asyncio.gather(*(_get(get, anon_vote_key(network, s)) for s in wanted))
    records = [
        r
        for subject, rs in zip(wanted, answers, strict=True)
        for r in rs
        if r.kind == ANON_VOTE_KIND
        and r.key == anon_vote_key(network, subject)
        and r.network == network
    ]
    named = {r.body_as(AnonVote).referee for r in records if not r.withdrawn}
    weighed = [k for k in named if trust.get(k, 0.0) > 0.0]
    referees = sorted(weighed, key=lambda k: (-trust[k], k))[:MAX_REFEREES]
    key_answers = await asyncio.gather(*(_get(get, anon_key_key(network, r)) for r in referees))
    keys = published_keys(
        (
            k
            for referee, ks in zip(referees, key_answers, strict=True)
            for k in ks
            if k.author == referee and k.network == network
        ),
        now=now,
    )
    return backed_votes(records, keys, now=now, referees=set(referees))
