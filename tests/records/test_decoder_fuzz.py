"""Decoder invariant (STYLE.md, after h11): any bytes either decode to a valid record or
raise RecordError - never any other exception, never a record that fails validation."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from fairdht.errors import RecordError
from fairdht.identity import SigningKey
from fairdht.records import Record, decode_record, sign_record, sign_withdrawal
from fairdht.records.kinds.server import ServerAnnouncement

NOW = 1_700_000_000
KEY = SigningKey(bytes(range(32)))
VALID = [
    sign_record(
        KEY, "server", "demo", b"main", ServerAnnouncement(address="[::1]:1", name="n"), now=NOW
    ).raw,
    sign_withdrawal(KEY, "server", "demo", b"main", now=NOW).raw,
]


def check(data: bytes) -> None:
    try:
        record = decode_record(data)
    except RecordError:
        return
    assert isinstance(record, Record)
    # Whatever decodes is exactly one of the records we signed.
    assert data in VALID


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=1100))
def test_random_bytes(data: bytes) -> None:
    check(data)


@settings(max_examples=3000, deadline=None)
@given(
    st.sampled_from(VALID),
    st.lists(st.tuples(st.integers(0, 1023), st.integers(0, 255)), min_size=1, max_size=4),
)
def test_mutated_records(base: bytes, flips: list[tuple[int, int]]) -> None:
    data = bytearray(base)
    for pos, value in flips:
        data[pos % len(data)] = value
    check(bytes(data))


def test_truncations_and_extensions() -> None:
    rng = random.Random(7)
    for base in VALID:
        for cut in range(len(base)):
            check(base[:cut])
        for _ in range(200):
            check(base + rng.randbytes(rng.randint(1, 20)))


def test_deep_nesting_and_odd_types() -> None:
    for data in [
        b"\x91" * 1000,
        b"\xc1",
        b"\xd4\x01\x00",
        b"\xcb" + bytes(8),
        b"\xdf\xff\xff\xff\xff",
    ]:
        check(data)
