"""Every storage rule, for the in-memory and the SQLite store alike."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from storage_testkit import NOW, STORE_KINDS, author, open_store, record, subkey_in_shard

from fairdht.dht.storage import (
    MemoryRecordStore,
    Quotas,
    RecordStore,
    SQLiteRecordStore,
    Usage,
    decide_put,
)
from fairdht.errors import Expired, QuotaExceeded, RecordError, StaleRecord, WrongKey


@pytest.fixture(params=STORE_KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(kind: str, tmp_path: Path) -> Iterator[RecordStore]:
    s = open_store(kind, tmp_path)
    yield s
    s.close()


def small(kind: str, tmp_path: Path, **limits: int) -> RecordStore:
    return open_store(kind, tmp_path, Quotas(**limits))


def test_both_stores_satisfy_the_interface(tmp_path: Path) -> None:
    with MemoryRecordStore() as mem, SQLiteRecordStore(tmp_path / "r.sqlite") as sql:
        assert isinstance(mem, RecordStore)
        assert isinstance(sql, RecordStore)


def test_put_then_get(store: RecordStore) -> None:
    r = record(0)
    assert store.put(r.key, r, now=NOW) == "stored"
    assert store.get(r.key, now=NOW) == [r]
    assert store.get(r.key, now=NOW)[0].raw == r.raw
    assert store.count() == 1
    assert store.total_bytes() == len(r.raw)
    assert store.keys() == [r.key]
    assert store.get(b"\x00" * 20, now=NOW) == []


def test_identical_bytes_are_a_duplicate(store: RecordStore) -> None:
    r = record(0)
    store.put(r.key, r, now=NOW)
    assert store.put(r.key, r, now=NOW + 1) == "duplicate"
    assert store.count() == 1
    assert store.total_bytes() == len(r.raw)


def test_newest_seq_wins_the_slot(store: RecordStore) -> None:
    old, new = record(0, seq=1, name="old"), record(0, seq=2, name="new-name")
    store.put(old.key, old, now=NOW)
    assert store.put(new.key, new, now=NOW) == "stored"
    assert store.get(new.key, now=NOW) == [new]
    assert store.count() == 1
    assert store.total_bytes() == len(new.raw)


@pytest.mark.parametrize(("held_seq", "offered_seq"), [(5, 4), (5, 5)])
def test_equal_or_older_seq_with_other_bytes_is_stale(
    store: RecordStore, held_seq: int, offered_seq: int
) -> None:
    held = record(0, seq=held_seq, name="held")
    offered = record(0, seq=offered_seq, name="offered")
    store.put(held.key, held, now=NOW)
    with pytest.raises(StaleRecord):
        store.put(offered.key, offered, now=NOW)
    assert store.get(held.key, now=NOW) == [held]


def test_slots_are_per_author_and_subkey_sorted(store: RecordStore) -> None:
    shard = 7
    records = [record(i, subkey_in_shard(i, shard, n)) for i in (2, 0, 1) for n in (1, 0)]
    key = records[0].key
    assert all(r.key == key for r in records)
    for r in records:
        assert store.put(key, r, now=NOW) == "stored"
    got = store.get(key, now=NOW)
    assert [r.slot for r in got] == sorted(r.slot for r in records)
    assert set(got) == set(records)


def test_a_withdrawal_replaces_the_slot_and_keeps_older_records_out(store: RecordStore) -> None:
    live = record(0, seq=1)
    gone = record(0, seq=2, withdrawn=True, ttl=300)
    store.put(live.key, live, now=NOW)
    assert store.put(gone.key, gone, now=NOW) == "stored"
    assert store.get(gone.key, now=NOW) == [gone]
    assert store.get(gone.key, now=NOW, include_withdrawn=False) == []
    # Kept until its own expiry: the withdrawn record cannot come back through replication.
    with pytest.raises(StaleRecord):
        store.put(live.key, live, now=NOW + 299)
    newer = record(0, seq=3, now=NOW + 10)
    assert store.put(newer.key, newer, now=NOW + 10) == "stored"
    assert store.get(newer.key, now=NOW + 10, include_withdrawn=False) == [newer]


def test_an_expired_withdrawal_frees_its_slot(store: RecordStore) -> None:
    gone = record(0, seq=5, withdrawn=True, ttl=60)
    older = record(0, seq=1, ttl=600)
    store.put(gone.key, gone, now=NOW)
    assert store.get(gone.key, now=NOW + 60) == []
    assert store.put(older.key, older, now=NOW + 60) == "stored"
    assert store.get(older.key, now=NOW + 60) == [older]
    assert store.count() == 1


def test_expired_records_are_never_returned_and_expire_deletes_them(store: RecordStore) -> None:
    short = record(0, b"a", ttl=100)
    long = record(1, b"b", ttl=500)
    for r in (short, long):
        store.put(r.key, r, now=NOW)
    assert short in store.get(short.key, now=NOW + 99)
    assert store.expire(NOW + 100) == 1
    assert store.count() == 1
    assert store.total_bytes() == len(long.raw)
    assert store.keys() == [long.key]
    assert store.expire(NOW + 100) == 0
    assert store.counters()["expired_removed"] == 1


def test_expired_records_are_never_listed(store: RecordStore) -> None:
    short = record(0, b"a", ttl=100)
    long = record(1, b"b", ttl=500)
    for r in (short, long):
        store.put(r.key, r, now=NOW)
    assert [r for _, r in store.items(now=NOW + 100)] == [long]
    assert short not in store.get(short.key, now=NOW + 100)


def test_a_read_that_meets_an_expired_record_removes_it(store: RecordStore) -> None:
    r = record(0, ttl=100)
    store.put(r.key, r, now=NOW)
    assert store.count() == 1
    assert store.get(r.key, now=NOW + 100) == []
    assert store.count() == 0
    assert store.keys() == []


def test_an_expired_record_is_refused(store: RecordStore) -> None:
    r = record(0, ttl=100)
    with pytest.raises(Expired):
        store.put(r.key, r, now=NOW + 100)
    assert store.count() == 0


def test_a_record_under_the_wrong_key_is_refused(store: RecordStore) -> None:
    r = record(0)
    with pytest.raises(WrongKey):
        store.put(b"\x01" * 20, r, now=NOW)
    with pytest.raises(WrongKey):
        store.put(r.key[:10], r, now=NOW)
    assert store.count() == 0


def test_key_quota_refuses_a_new_slot_but_not_a_replacement(kind: str, tmp_path: Path) -> None:
    with small(kind, tmp_path, max_per_key=3) as s:
        rs = [record(i, subkey_in_shard(i, 3)) for i in range(4)]
        key = rs[0].key
        for r in rs[:3]:
            s.put(key, r, now=NOW)
        with pytest.raises(QuotaExceeded, match="key quota"):
            s.put(key, rs[3], now=NOW)
        newer = record(0, subkey_in_shard(0, 3), seq=2)
        assert s.put(key, newer, now=NOW) == "stored"
        elsewhere = record(3, subkey_in_shard(3, 4))
        assert s.put(elsewhere.key, elsewhere, now=NOW) == "stored"
        assert s.count() == 4


def test_author_quota_counts_across_keys(kind: str, tmp_path: Path) -> None:
    with small(kind, tmp_path, max_per_author=2) as s:
        a, b, c = (record(0, subkey_in_shard(0, shard)) for shard in (1, 2, 3))
        assert len({a.key, b.key, c.key}) == 3
        s.put(a.key, a, now=NOW)
        s.put(b.key, b, now=NOW)
        with pytest.raises(QuotaExceeded, match="author quota"):
            s.put(c.key, c, now=NOW)
        other = record(1, subkey_in_shard(1, 3))
        assert s.put(other.key, other, now=NOW) == "stored"
        replacement = record(0, subkey_in_shard(0, 1), seq=9)
        assert s.put(replacement.key, replacement, now=NOW) == "stored"


def test_byte_quota_counts_replacements_by_their_size(kind: str, tmp_path: Path) -> None:
    a, b = record(0, b"a"), record(1, b"b")
    with small(kind, tmp_path, max_bytes=len(a.raw) + len(b.raw) + 5) as s:
        s.put(a.key, a, now=NOW)
        s.put(b.key, b, now=NOW)
        third = record(2, b"c")
        with pytest.raises(QuotaExceeded, match="storage full"):
            s.put(third.key, third, now=NOW)
        same_size = record(0, b"a", seq=2)
        assert len(same_size.raw) == len(a.raw)
        assert s.put(same_size.key, same_size, now=NOW) == "stored"
        bigger = record(0, b"a", seq=3, name="a much longer server name")
        with pytest.raises(QuotaExceeded, match="storage full"):
            s.put(bigger.key, bigger, now=NOW)
        assert s.total_bytes() == len(same_size.raw) + len(b.raw)


def test_a_full_quota_first_sweeps_expired_records(kind: str, tmp_path: Path) -> None:
    with small(kind, tmp_path, max_per_author=2) as s:
        for sub in (b"a", b"b"):
            r = record(0, sub, ttl=50)
            s.put(r.key, r, now=NOW)
        later = record(0, b"c", now=NOW + 50)
        assert s.put(later.key, later, now=NOW + 50) == "stored"
        assert s.count() == 1


def test_items_lists_every_live_record_by_key_then_slot(store: RecordStore) -> None:
    records = [record(i, sub) for i in range(3) for sub in (b"x", b"y")]
    records.append(record(3, b"z", withdrawn=True))
    for r in records:
        store.put(r.key, r, now=NOW)
    items = list(store.items(now=NOW))
    assert [(k, r.slot) for k, r in items] == sorted((r.key, r.slot) for r in records)
    assert {r for _, r in items} == set(records)


def test_items_survives_writes_while_iterating(store: RecordStore) -> None:
    for i in range(3):
        r = record(i, b"k")
        store.put(r.key, r, now=NOW)
    seen = 0
    for n, (_, r) in enumerate(store.items(now=NOW)):
        extra = record(5, b"e" + bytes([n]))
        store.put(extra.key, extra, now=NOW)
        seen += 1
        assert r.subkey == b"k" or r.author == author(5).public_key.raw
    assert seen >= 3
    assert store.count() == 3 + seen


def test_refusals_are_record_errors_with_codes(store: RecordStore) -> None:
    r = record(0, seq=3)
    store.put(r.key, r, now=NOW)
    with pytest.raises(RecordError) as info:
        store.put(r.key, record(0, seq=2), now=NOW)
    assert info.value.code == "stale"


def test_close_twice_is_safe(store: RecordStore) -> None:
    store.close()
    store.close()


def test_decide_put_is_pure_and_shared() -> None:
    quotas = Quotas(max_per_key=1, max_per_author=1, max_bytes=10_000)
    r = record(0)
    empty = Usage(key_count=0, author_count=0, total_bytes=0)
    full = Usage(key_count=1, author_count=1, total_bytes=len(r.raw))
    assert decide_put(r.key, r, None, empty, quotas, now=NOW) == "stored"
    assert decide_put(r.key, r, r, full, quotas, now=NOW) == "duplicate"
    with pytest.raises(QuotaExceeded):
        decide_put(r.key, r, None, full, quotas, now=NOW)
    newer = record(0, seq=2)
    assert decide_put(r.key, newer, r, full, quotas, now=NOW) == "stored"
    with pytest.raises(StaleRecord):
        decide_put(r.key, r, newer, full, quotas, now=NOW)
    # An expired held record does not keep its seq: any live record takes the slot.
    expired_held = record(0, seq=9, ttl=10)
    assert decide_put(r.key, r, expired_held, full, quotas, now=NOW + 10) == "stored"


@pytest.mark.parametrize(
    "limits", [{"max_per_key": 0}, {"max_per_author": -1}, {"max_bytes": 0}, {"max_bytes": True}]
)
def test_quotas_must_be_positive(limits: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="positive"):
        Quotas(**limits)


def test_default_quotas() -> None:
    q = Quotas()
    assert (q.max_per_key, q.max_per_author, q.max_bytes) == (512, 256, 64 * 1024 * 1024)
