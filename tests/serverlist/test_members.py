"""Member lists: canonical blob bytes, root, and a decoder that only raises RecordError."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from serverlist_helpers import NET, key

from fairdht.errors import RecordError
from fairdht.records import canonical_pack
from fairdht.serverlist import Member, MemberList, decode_members, state_root


def _list() -> MemberList:
    members = [
        Member(key(f"m{i}").public_key.raw, bytes([i]) * 16, f"10.0.0.{i}:1") for i in range(1, 6)
    ]
    return MemberList.build(NET, 3, [*members, members[0]])


def test_roundtrip_and_root() -> None:
    ml = _list()
    assert len(ml.members) == 5
    assert decode_members(ml.encode()) == ml
    assert ml.root == state_root(list(ml.leaves))


def test_unsorted_or_noncanonical_lists_are_refused() -> None:
    ml = _list()
    rows = [[m.author, m.subkey, m.address] for m in reversed(ml.members)]
    with pytest.raises(RecordError, match="sorted"):
        decode_members(canonical_pack(["fairdht/members/v1", NET, 3, rows]))
    with pytest.raises(RecordError):
        decode_members(canonical_pack(["fairdht/members/v1", NET, 3, [[b"x", b"y", "z"]]]))
    with pytest.raises(RecordError):
        decode_members(canonical_pack(["other", NET, 3, []]))


@given(st.binary(max_size=300))
def test_decoder_invariant_bytes(data: bytes) -> None:
    """Either it parses, or it raises RecordError: never anything else."""
    with contextlib.suppress(RecordError):
        decode_members(data)


@given(
    st.lists(
        st.tuples(
            st.binary(min_size=32, max_size=32), st.binary(max_size=40), st.text(max_size=70)
        ),
        max_size=4,
    ),
    st.text(max_size=40),
)
def test_decoder_invariant_shapes(rows: list[tuple[bytes, bytes, str]], network: str) -> None:
    data = canonical_pack(["fairdht/members/v1", network, 1, [list(r) for r in rows]])
    with contextlib.suppress(RecordError):
        decode_members(data)
