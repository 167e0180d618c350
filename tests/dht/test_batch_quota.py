"""A STORE's puts share one transaction (``RecordStore.batch``), and quotas hold inside it.

A put refused inside a batch undoes only its own changes; the batch commits the rest
once (a reopened SQLite file holds them); an error out of the batch undoes it all.
Both stores, the ledger of bytes per source checked against the rows.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from dhtkit import det_key, server_record

from fairdht.dht.source_quota import Source
from fairdht.dht.storage import MemoryRecordStore, Quotas, RecordStore, SQLiteRecordStore
from fairdht.errors import QuotaExceeded

KIB = 1024
QUOTAS = Quotas(
    max_per_key=512,
    max_per_author=64,
    max_bytes=64 * KIB,
    max_per_ip=4 * KIB,
    max_per_contact=8 * KIB,
    max_per_net=8 * KIB,
)
SOURCE = Source.client("127.0.66.1")


def make_store(engine: str, path: Path) -> RecordStore:
    if engine == "memory":
        return MemoryRecordStore(quotas=QUOTAS)
    return SQLiteRecordStore(path, quotas=QUOTAS, synchronous="normal")


def offer(store: RecordStore, labels: range, now: float) -> tuple[int, int]:
    """Put one record per label through SOURCE; (stored, refused by a quota)."""
    stored = refused = 0
    for i in labels:
        record = server_record(det_key(f"batch-{i}"), now=now, name=f"record {i}")
        try:
            store.put(record.key, record, now=now, source=SOURCE)
        except QuotaExceeded:
            refused += 1
        else:
            stored += 1
    return stored, refused


@pytest.mark.parametrize("engine", ["memory", "sqlite"])
def test_refused_puts_in_a_batch_leave_the_others_committed(engine: str, tmp_path: Path) -> None:
    path = tmp_path / "batch.sqlite"
    store = make_store(engine, path)
    now = time.time()
    with store.batch():
        stored, refused = offer(store, range(40), now)
    assert stored > 0 and refused > 0  # the per-IP quota (4 KiB) refused the rest
    assert store.count() == stored
    assert store.source_bytes()[SOURCE.account] == store.total_bytes() <= QUOTAS.max_per_ip
    if engine == "sqlite":
        store.close()
        store = make_store(engine, path)  # what the batch committed is on disk
        assert store.count() == stored
        assert store.source_bytes()[SOURCE.account] == store.total_bytes()
    store.close()


@pytest.mark.parametrize("engine", ["memory", "sqlite"])
def test_an_error_out_of_a_batch_undoes_all_of_it(engine: str, tmp_path: Path) -> None:
    store = make_store(engine, tmp_path / "batch.sqlite")
    now = time.time()
    first, _ = offer(store, range(3), now)

    def failing_handler() -> None:
        with store.batch():
            offer(store, range(3, 8), now)
            raise RuntimeError("the handler failed before answering")

    with pytest.raises(RuntimeError):
        failing_handler()
    assert store.count() == first == 3
    assert store.source_bytes()[SOURCE.account] == store.total_bytes()
    store.close()
