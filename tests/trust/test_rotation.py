"""TUF-style key rotation and k-of-n agreement over signed records."""

from __future__ import annotations

from pathlib import Path

from fairdht.identity import SigningKey
from fairdht.records import sign_record
from fairdht.records.kinds.checkpoint import CHECKPOINT_KIND, CheckpointBody, version_subkey
from fairdht.trust import TrustStore, agreements, apply_rotations, sign_rotation

NOW = 1_800_000_000.0
OLD = [SigningKey(bytes([i]) * 32) for i in range(1, 4)]
NEW = [SigningKey(bytes([i]) * 32) for i in range(10, 12)]


def _store(tmp_path: Path) -> TrustStore:
    store = TrustStore(tmp_path / "trust.sqlite", defaults={})
    for k in OLD:
        store.add("net", "checkpoint", k.public_key.raw)
    store.set_threshold("net", "checkpoint", 2)
    return store


def _new_set() -> set[bytes]:
    return {k.public_key.raw for k in NEW}


def test_rotation_needs_k_of_the_old_set(tmp_path: Path) -> None:
    store = _store(tmp_path)
    one = [sign_rotation(OLD[0], "net", "checkpoint", 1, _new_set(), 2, now=NOW)]
    assert apply_rotations(store, "net", "checkpoint", one, now=NOW) == []
    # New keys signing their own promotion do not count: they are not trusted yet.
    selfish = [sign_rotation(k, "net", "checkpoint", 1, _new_set(), 1, now=NOW) for k in NEW]
    assert apply_rotations(store, "net", "checkpoint", one + selfish, now=NOW) == []
    two = [*one, sign_rotation(OLD[2], "net", "checkpoint", 1, _new_set(), 2, now=NOW)]
    applied = apply_rotations(store, "net", "checkpoint", two, now=NOW)
    assert [r.version for r in applied] == [1]
    assert store.keys("net", "checkpoint") == _new_set()
    assert store.threshold("net", "checkpoint") == 2
    # Replaying the same rotation, or an old-set-signed version 1, changes nothing now.
    assert apply_rotations(store, "net", "checkpoint", two, now=NOW) == []


def test_rotation_chain_is_walked_in_order(tmp_path: Path) -> None:
    store = _store(tmp_path)
    step1 = [sign_rotation(k, "net", "checkpoint", 1, _new_set(), 2, now=NOW) for k in OLD[:2]]
    final = {OLD[0].public_key.raw}
    step2 = [sign_rotation(k, "net", "checkpoint", 2, final, 1, now=NOW) for k in NEW]
    applied = apply_rotations(store, "net", "checkpoint", step2 + step1, now=NOW)
    assert [r.version for r in applied] == [1, 2]
    assert store.keys("net", "checkpoint") == final
    assert store.keyset_version("net", "checkpoint") == 2


def test_expired_or_mismatched_rotations_are_ignored(tmp_path: Path) -> None:
    store = _store(tmp_path)
    a = sign_rotation(OLD[0], "net", "checkpoint", 1, _new_set(), 2, now=NOW)
    b = sign_rotation(OLD[1], "net", "checkpoint", 1, _new_set(), 1, now=NOW)  # other body
    assert apply_rotations(store, "net", "checkpoint", [a, b], now=NOW) == []
    c = sign_rotation(OLD[1], "net", "checkpoint", 1, _new_set(), 2, now=NOW, ttl=60)
    assert apply_rotations(store, "net", "checkpoint", [a, c], now=NOW + 61) == []
    assert store.keyset_version("net", "checkpoint") == 0


def test_agreements_count_distinct_trusted_signers() -> None:
    body = CheckpointBody(1, b"r" * 32, b"m" * 32, 3, int(NOW) + 100)
    other = CheckpointBody(1, b"x" * 32, b"m" * 32, 3, int(NOW) + 100)
    recs = [sign_record(k, CHECKPOINT_KIND, "net", version_subkey(1), body, now=NOW) for k in OLD]
    recs.append(sign_record(NEW[0], CHECKPOINT_KIND, "net", version_subkey(1), body, now=NOW))
    recs.append(sign_record(OLD[0], CHECKPOINT_KIND, "net", version_subkey(1), other, now=NOW))
    trusted = frozenset(k.public_key.raw for k in OLD[:2])
    groups = agreements(recs, trusted)
    assert groups[0].body == body
    assert groups[0].signers == trusted
    assert groups[0].reached(2)
    assert not groups[1].reached(2)
