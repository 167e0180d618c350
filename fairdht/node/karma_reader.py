"""Karma of some subjects in one reader's own view, as ``fairdht karma show`` reads it.

Shared by the commands that color what they list (``fairdht servers``, ``fairdht
referees``): the reader is the key in the data dir, with its policy, ``karma`` raters,
distrusted keys and replay marks (fairdht.node.karma_state).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from fairdht.identity.keyfile import load_key
from fairdht.karma import fetch_view, karma_of
from fairdht.node.karma_state import STATE_FILE_NAME, KarmaState, reader_inputs
from fairdht.records.envelope import Record

__all__ = ["reader_karma"]


async def reader_karma(
    get: Callable[[bytes], Awaitable[list[Record]]],
    *,
    data_dir: Path,
    key_path: Path,
    network: str,
    subjects: Sequence[bytes],
    now: float,
) -> dict[bytes, tuple[float, str]] | None:
    """(score, color) per subject, or None when there is no key file to read as.

    ``get`` must include withdrawals: they raise the replay marks; karma is
    security-relevant, so callers read it over disjoint paths (``disjoint=True``).
    """
    # One stat and one small read of a local key file: not worth a thread.
    if not subjects or not key_path.exists():  # noqa: ASYNC240
        return None
    reader = load_key(key_path).public_key.raw
    inputs = reader_inputs(data_dir, network, now=now)
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
    return {s: karma_of(fetched.view, s) for s in subjects}
