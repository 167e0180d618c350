"""The SQLite store's own duties: persistence, schema, damage on disk, a full disk."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from storage_testkit import NOW, record, subkey_in_shard

from fairdht.dht.storage import (
    RECORDS_FILENAME,
    SCHEMA_VERSION,
    Quotas,
    SQLiteRecordStore,
    StorageError,
)
from fairdht.errors import QuotaExceeded, StaleRecord, UsageError


def raw_db(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


@pytest.mark.parametrize("synchronous", ["full", "normal"])
def test_records_survive_close_and_reopen(tmp_path: Path, synchronous: str) -> None:
    path = tmp_path / "data" / RECORDS_FILENAME
    records = [record(i, sub) for i in range(3) for sub in (b"a", b"b")]
    records.append(record(4, b"w", withdrawn=True))
    store = SQLiteRecordStore(path, synchronous="full" if synchronous == "full" else "normal")
    for r in records:
        store.put(r.key, r, now=NOW)
    listing = list(store.items(now=NOW))
    count, size = store.count(), store.total_bytes()
    store.close()

    with SQLiteRecordStore(path) as again:
        assert list(again.items(now=NOW)) == listing
        assert {r for _, r in listing} == set(records)
        assert (again.count(), again.total_bytes()) == (count, size)
        # What was held still decides the slot after the restart.
        with pytest.raises(StaleRecord):
            again.put(records[0].key, record(0, b"a", name="other"), now=NOW)
        assert again.integrity_check() == []


def test_quotas_apply_to_what_was_stored_before_a_restart(tmp_path: Path) -> None:
    path = tmp_path / RECORDS_FILENAME
    quotas = Quotas(max_per_author=2)
    with SQLiteRecordStore(path, quotas=quotas) as s:
        for sub in (b"a", b"b"):
            r = record(0, sub)
            s.put(r.key, r, now=NOW)
    with SQLiteRecordStore(path, quotas=quotas) as s:
        r = record(0, b"c")
        with pytest.raises(QuotaExceeded, match="author quota"):
            s.put(r.key, r, now=NOW)


def test_the_file_is_wal_with_a_version_table_and_indexes(tmp_path: Path) -> None:
    path = tmp_path / RECORDS_FILENAME
    with SQLiteRecordStore(path) as s:
        r = record(0)
        s.put(r.key, r, now=NOW)
        db = raw_db(path)
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        names = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        assert {"records", "records_by_author", "records_by_expiry"} <= names
        plan = " ".join(
            str(row[-1])
            for row in db.execute(
                "EXPLAIN QUERY PLAN SELECT COUNT(*) FROM records WHERE author = ?", (b"x",)
            )
        )
        assert "records_by_author" in plan
        # Committed before put returned: another connection sees it at once.
        assert db.execute("SELECT raw FROM records").fetchall() == [(r.raw,)]
        db.close()


def test_synchronous_must_be_full_or_normal(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="synchronous"):
        SQLiteRecordStore(tmp_path / "r.sqlite", synchronous="off")  # type: ignore[arg-type]


def test_a_newer_schema_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / RECORDS_FILENAME
    SQLiteRecordStore(path).close()
    db = raw_db(path)
    db.execute("UPDATE schema_version SET version = 99")
    db.close()
    with pytest.raises(StorageError, match="schema version 99"):
        SQLiteRecordStore(path)


def test_a_file_that_is_not_a_database_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / RECORDS_FILENAME
    path.write_bytes(b"this is not sqlite at all " * 200)
    with pytest.raises(StorageError, match=str(path)):
        SQLiteRecordStore(path)


def test_another_programs_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / RECORDS_FILENAME
    db = raw_db(path)
    db.execute("CREATE TABLE recipes (name TEXT)")
    db.close()
    with pytest.raises(StorageError, match="not a fairdht record store"):
        SQLiteRecordStore(path)


def _fill(path: Path, n: int) -> list[bytes]:
    keys = []
    with SQLiteRecordStore(path, synchronous="normal") as s:
        for i in range(n):
            r = record(i % 5, b"n" + i.to_bytes(2, "big"), name="x" * 60)
            s.put(r.key, r, now=NOW)
            keys.append(r.key)
    return keys


def test_a_damaged_file_is_refused_at_open_with_what_is_wrong(tmp_path: Path) -> None:
    path = tmp_path / RECORDS_FILENAME
    _fill(path, 200)
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 6 * page
    # Scribble over the b-tree page headers past the schema page (page 1).
    for start in range(2 * page, len(data), page):
        data[start : start + 12] = b"\xff" * 12
    path.write_bytes(bytes(data))
    with pytest.raises(StorageError, match=str(path)) as info:
        SQLiteRecordStore(path)
    assert "damaged" in str(info.value) or "malformed" in str(info.value)


@pytest.mark.parametrize("damage", ["flip_sig", "other_record", "garbage"])
def test_a_damaged_row_is_dropped_counted_and_never_served(tmp_path: Path, damage: str) -> None:
    path = tmp_path / RECORDS_FILENAME
    shard = 9
    victim = record(0, subkey_in_shard(0, shard))
    neighbour = record(1, subkey_in_shard(1, shard))
    stranger = record(2, b"zz")
    with SQLiteRecordStore(path) as s:
        for r in (victim, neighbour, stranger):
            s.put(r.key, r, now=NOW)
    if damage == "flip_sig":
        bad = victim.raw[:-1] + bytes([victim.raw[-1] ^ 1])
    elif damage == "other_record":
        bad = stranger.raw  # valid signed bytes, but not the row's record
    else:
        bad = b"\x00\x01\x02"
    db = raw_db(path)
    db.execute("UPDATE records SET raw = ? WHERE author = ?", (bad, victim.author))
    db.close()

    with SQLiteRecordStore(path) as s:
        assert s.count() == 3
        assert s.get(victim.key, now=NOW) == [neighbour]
        assert s.counters()["corrupt_dropped"] == 1
        assert s.count() == 2
        assert s.total_bytes() == len(neighbour.raw) + len(stranger.raw)
        assert [r for _, r in s.items(now=NOW)] == sorted(
            [neighbour, stranger], key=lambda r: (r.key, r.slot)
        )
        # The slot is free again: the real record can be stored anew.
        assert s.put(victim.key, victim, now=NOW) == "stored"
        assert s.counters()["corrupt_dropped"] == 1


def test_a_full_disk_refuses_puts_and_keeps_serving(tmp_path: Path) -> None:
    path = tmp_path / RECORDS_FILENAME
    acked = []
    with SQLiteRecordStore(path, max_pages=12) as s:
        error = None
        for i in range(2000):
            r = record(i % 7, b"f" + i.to_bytes(2, "big"), name="n" * 60)
            try:
                assert s.put(r.key, r, now=NOW) == "stored"
            except QuotaExceeded as exc:
                error = exc
                break
            acked.append(r)
        assert error is not None, "the capped file never filled"
        assert "disk full" in str(error)
        assert s.counters()["disk_full"] == 1
        assert len(acked) > 10
        assert s.count() == len(acked)
        assert s.total_bytes() == sum(len(r.raw) for r in acked)
        for r in acked:
            assert r in s.get(r.key, now=NOW)
        # Refusing once does not wedge the store: a replacement of the same size in an
        # existing slot (no new pages) still works, and reads go on.
        again = acked[0]
        same = record(0, again.subkey, seq=again.seq + 1, name="m" * 60)
        assert len(same.raw) == len(again.raw)
        assert s.put(same.key, same, now=NOW) == "stored"
        acked[0] = same
        assert s.integrity_check() == []
    with SQLiteRecordStore(path) as s:
        held = {r for _, r in s.items(now=NOW)}
        assert held == set(acked)


def test_damage_met_after_open_is_a_storage_error_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / RECORDS_FILENAME
    keys = _fill(path, 200)
    db = raw_db(path)
    index_root = db.execute(
        "SELECT rootpage FROM sqlite_master WHERE name = 'sqlite_autoindex_records_1'"
    ).fetchone()[0]
    db.close()
    data = bytearray(path.read_bytes())
    start = (index_root - 1) * 4096
    data[start : start + 12] = b"\xff" * 12
    path.write_bytes(bytes(data))
    # Without the check at open, the damage is met by the first key lookup.
    with SQLiteRecordStore(path, check_integrity=False) as s:
        assert s.count() == 200
        with pytest.raises(StorageError, match="malformed"):
            s.get(keys[0], now=NOW)
        with pytest.raises(StorageError, match="malformed"):
            s.keys()
        r = record(0, b"new")
        with pytest.raises(StorageError, match="malformed"):
            s.put(r.key, r, now=NOW)
    with pytest.raises(StorageError, match="damaged"):
        SQLiteRecordStore(path)


def test_a_closed_store_says_so(tmp_path: Path) -> None:
    s = SQLiteRecordStore(tmp_path / RECORDS_FILENAME)
    s.close()
    with pytest.raises(StorageError, match="closed"):
        s.get(b"\x00" * 20, now=NOW)


def test_valid_bytes_in_the_wrong_row_are_dropped_even_when_cached(tmp_path: Path) -> None:
    path = tmp_path / RECORDS_FILENAME
    victim, stranger = record(0, b"v"), record(1, b"s")
    with SQLiteRecordStore(path) as s:
        for r in (victim, stranger):
            s.put(r.key, r, now=NOW)
        assert s.get(stranger.key, now=NOW) == [stranger]  # decoded once, now cached
        db = raw_db(path)
        db.execute("UPDATE records SET raw = ? WHERE author = ?", (stranger.raw, victim.author))
        db.close()
        assert victim not in s.get(victim.key, now=NOW)
        assert stranger not in s.get(victim.key, now=NOW) or victim.key == stranger.key
        assert s.counters()["corrupt_dropped"] == 1
        assert s.count() == 1
        assert s.get(stranger.key, now=NOW) == [stranger]


@pytest.mark.parametrize(("synchronous", "level"), [("full", 2), ("normal", 1)])
def test_the_synchronous_setting_reaches_sqlite(
    tmp_path: Path, synchronous: str, level: int
) -> None:
    chosen = "full" if synchronous == "full" else "normal"
    with SQLiteRecordStore(tmp_path / RECORDS_FILENAME, synchronous=chosen) as s:
        assert s._db.execute("PRAGMA synchronous").fetchone() == (level,)
        assert s._db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
