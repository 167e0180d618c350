"""The karma flows: a reader's view of some subjects, a subject's explained score, and
casting a vote, each with the one document that ``fairdht karma`` and the HTTP API render.

The reader is a key with its data dir: its policy, its ``karma`` raters, the keys it
distrusts and its replay marks (fairdht.node.karma_state). Every read raises the marks.
Reads include withdrawals (they raise the marks) and take disjoint paths where the
caller's ``get`` offers them: karma is a security-relevant read (S/Kademlia §4.4).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from fairdht.identity import SigningKey
from fairdht.identity.keyfile import load_key
from fairdht.karma import fetch_view, karma_of
from fairdht.karma.fetch import FetchedView
from fairdht.karma.publish import cast_vote
from fairdht.karma.score import score_json, score_subject
from fairdht.node.karma_state import STATE_FILE_NAME, KarmaState, reader_inputs
from fairdht.records.envelope import Record

__all__ = [
    "Get",
    "Put",
    "read_view",
    "reader_karma",
    "score_document",
    "vote",
]

Get = Callable[[bytes], Awaitable[list[Record]]]
Put = Callable[[Record], Awaitable[Any]]


async def read_view(
    get: Get,
    data_dir: Path,
    *,
    reader: bytes,
    network: str,
    subjects: Sequence[bytes],
    now: float,
    policy_path: Path | None = None,
) -> FetchedView:
    """Crawl around ``reader`` (bounded by its policy), build its view of ``subjects`` and
    raise the data dir's replay marks. ``get`` must include withdrawals."""
    inputs = reader_inputs(data_dir, network, now=now, policy_path=policy_path)
    fetched = await fetch_view(
        get,
        network=network,
        reader=reader,
        subjects=list(subjects),
        policy=inputs.policy,
        now=now,
        trusted=inputs.trusted,
        distrusted=inputs.distrusted,
        high_water=inputs.high_water,
    )
    KarmaState(data_dir / STATE_FILE_NAME).raise_marks(network, fetched.high_water, now=now)
    return fetched


async def reader_karma(
    get: Get,
    *,
    data_dir: Path,
    key_path: Path,
    network: str,
    subjects: Sequence[bytes],
    now: float,
) -> dict[bytes, tuple[float, str]] | None:
    """(score, color) per subject as the key at ``key_path`` reads it, or None when there
    is no key file to read as (how ``servers``, ``referees`` and gateways color lists)."""
    # One stat and one small read of a local key file: not worth a thread.
    if not subjects or not key_path.exists():  # noqa: ASYNC240
        return None
    reader = load_key(key_path).public_key.raw
    fetched = await read_view(
        get, data_dir, reader=reader, network=network, subjects=subjects, now=now
    )
    return {s: karma_of(fetched.view, s) for s in subjects}


def score_document(
    fetched: FetchedView, subject: bytes, *, network: str, reader: bytes, explain: bool
) -> dict[str, Any]:
    """The document of ``fairdht karma show --json`` and ``GET /api/karma/{subject}``;
    explained votes say whether they are attributed or anonymous (docs/karma.md)."""
    doc = score_json(score_subject(fetched.view, subject), explain=explain, kinds=True)
    doc.update(
        network=network,
        reader=reader.hex(),
        records_fetched=fetched.fetched,
        dropped=dict(sorted(fetched.dropped.items())),
    )
    return doc


async def vote(
    put: Put,
    get: Get,
    key: SigningKey,
    data_dir: Path,
    *,
    network: str,
    subject: bytes,
    action: str,
    context: str,
    evidence: bytes,
    withdraw: bool,
    now: float,
) -> dict[str, Any]:
    """Sign the vote (or its withdrawal), put it and the voter's index, remember it as the
    voter's own, and return the document ``karma vote --json`` and the API answer."""
    result = await cast_vote(
        put,
        get,
        key,
        network=network,
        subject=subject,
        action=action,
        context=context,
        evidence=evidence,
        withdraw=withdraw,
        now=now,
    )
    KarmaState(data_dir / STATE_FILE_NAME).record_own(result.record)
    accepted = getattr(result.put_result, "accepted", None)
    return {
        "subject": subject.hex(),
        "action": action,
        "context": context,
        "withdrawn": withdraw,
        "network": network,
        "voter": key.public_key.hex(),
        "issued_at": result.record.issued_at,
        "expires_at": result.record.expires_at,
        "accepted": accepted if isinstance(accepted, int) else None,
        "index_subjects": result.index_subjects,
    }
