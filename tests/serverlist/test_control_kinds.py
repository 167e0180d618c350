"""Kinds checkpoint, rollback and keyset: round trips, slot rules, decoder invariant."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from serverlist_helpers import NET, NOW, key

from fairdht.errors import BadBody
from fairdht.records import decode_record, derive_key, sign_record
from fairdht.records.kinds.checkpoint import CHECKPOINT_KIND, CheckpointBody, version_subkey
from fairdht.records.kinds.keyset import KeySetBody
from fairdht.records.kinds.rollback import RollbackBody
from fairdht.serverlist import checkpoint_key, keyset_key, rollback_key

BODY = CheckpointBody(7, b"r" * 32, b"m" * 32, 3, int(NOW) + 60)
# BLAKE2b-160("fairdht/key/v1" ‖ u16 ‖ "checkpoints" ‖ u16 ‖ "demo" ‖ u16 ‖ 32 zero bytes).
PINNED_DEMO_ZERO = "bfb61a86c23b7e069262d397d34be1da460769bd"


def test_checkpoint_round_trip_and_key() -> None:
    record = sign_record(key("m"), CHECKPOINT_KIND, NET, version_subkey(7), BODY, now=NOW)
    assert decode_record(record.raw).body == BODY
    m = key("m").public_key.raw
    assert record.key == checkpoint_key(NET, m)
    assert len({checkpoint_key(NET, m), rollback_key(NET, m), keyset_key(NET, m)}) == 3


def test_control_keys_are_per_author_and_pinned() -> None:
    """(kind, network, author): another author, or another network, is another key."""
    a, b = key("a").public_key.raw, key("b").public_key.raw
    assert checkpoint_key(NET, a) != checkpoint_key(NET, b)
    assert checkpoint_key(NET, a) != checkpoint_key("othernet", a)
    # Known answer: derive_key("checkpoints", network, author) (docs/protocol.md).
    assert checkpoint_key("demo", bytes(32)).hex() == PINNED_DEMO_ZERO
    assert checkpoint_key(NET, a) == derive_key("checkpoints", NET.encode(), a)
    assert rollback_key(NET, a) == derive_key("rollbacks", NET.encode(), a)
    assert keyset_key(NET, a) == derive_key("keysets", NET.encode(), a)


def test_checkpoint_slot_must_be_its_version() -> None:
    with pytest.raises(BadBody, match="subkey"):
        sign_record(key("m"), CHECKPOINT_KIND, NET, version_subkey(8), BODY, now=NOW)


def test_rollback_must_be_newer_than_its_target() -> None:
    with pytest.raises(BadBody):
        RollbackBody(1, 1, b"r" * 32, b"m" * 32, 0, 0)


def test_keyset_rules() -> None:
    with pytest.raises(BadBody):
        KeySetBody("checkpoint", 1, (b"b" * 32, b"a" * 32), 1)  # unsorted
    with pytest.raises(BadBody):
        KeySetBody("checkpoint", 1, (b"a" * 32,), 2)  # K > n
    with pytest.raises(BadBody):
        KeySetBody("admin", 1, (b"a" * 32,), 1)


_values = st.one_of(
    st.integers(min_value=-(2**64), max_value=2**64),
    st.binary(max_size=40),
    st.sampled_from([b"k" * 32, b"a" * 32, "checkpoint", 1, 2]),
    st.text(max_size=40),
    st.lists(
        st.one_of(st.binary(max_size=33), st.just(b"z" * 32), st.text(max_size=3)), max_size=3
    ),
    st.lists(st.lists(st.integers(), max_size=1), max_size=2),
    st.none(),
    st.booleans(),
)


@pytest.mark.parametrize("body_type", [CheckpointBody, RollbackBody, KeySetBody])
@given(data=st.data())
def test_from_wire_raises_only_bad_body(body_type: type, data: st.DataObject) -> None:
    """Either it parses, or it raises BadBody: never anything else."""
    fields = list(body_type.__dataclass_fields__)
    obj = data.draw(st.fixed_dictionaries({f: _values for f in fields}))
    if data.draw(st.booleans()):
        obj = {k: v for k, v in obj.items() if k != data.draw(st.sampled_from(fields))}
    with contextlib.suppress(BadBody):
        body_type.from_wire(obj)
