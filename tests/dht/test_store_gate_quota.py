"""The store gate: STOREs from a source at its storage quota pass at a trickle (issue 12).

Both stores (memory and a real SQLite file) are filled through one IP to its quota;
the gate then sheds that IP's STOREs past the trickle, never another source's, and
lets the full source in again once its records expire.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from dhtkit import det_key, server_record

from fairdht.dht.ratelimit import Limit
from fairdht.dht.source_quota import Source
from fairdht.dht.storage import MemoryRecordStore, Quotas, RecordStore, SQLiteRecordStore
from fairdht.dht.store_gate import StoreGate
from fairdht.errors import QuotaExceeded

KIB = 1024
QUOTAS = Quotas(
    max_per_key=512,
    max_per_author=64,
    max_bytes=256 * KIB,
    max_per_ip=8 * KIB,
    max_per_contact=16 * KIB,
    max_per_net=24 * KIB,
)
FLOODER = "127.0.66.1"
NEIGHBOUR = "127.0.66.2"  # same /24 as the flooder
OTHER = "127.0.77.1"


def make_store(engine: str, tmp: Path) -> RecordStore:
    if engine == "memory":
        return MemoryRecordStore(quotas=QUOTAS)
    return SQLiteRecordStore(tmp / "gate.sqlite", quotas=QUOTAS, synchronous="normal")


def fill(store: RecordStore, ip: str, now: float, *, ttl: int | None = None) -> int:
    """Store records through ``ip`` until its quota refuses one; return how many."""
    for i in range(1000):
        record = server_record(det_key(f"{ip}-{i}"), now=now, name=f"junk {i}", ttl=ttl)
        try:
            store.put(record.key, record, now=now, source=Source.client(ip))
        except QuotaExceeded:
            return i
    raise AssertionError("the per-IP quota never refused")


@pytest.mark.parametrize("engine", ["memory", "sqlite"])
def test_a_full_ip_is_shed_past_its_trickle_and_no_one_else(engine: str, tmp_path: Path) -> None:
    store = make_store(engine, tmp_path)
    gate = StoreGate(store, Source.client, host=Limit(2.0, 4.0), subnet=Limit(4.0, 8.0))
    now = time.time()
    try:
        # Before the fill nothing is shed, however many STOREs arrive at once.
        assert not any(gate.sheds(FLOODER, 0.0) for _ in range(50))
        assert fill(store, FLOODER, now) > 0
        assert store.nearly_full(Source.client(FLOODER))
        # Full: 4 pass at once (the burst), then 2 a second.
        passed = [not gate.sheds(FLOODER, 10.0) for _ in range(50)]
        assert passed[:4] == [True] * 4 and sum(passed) == 4
        assert sum(not gate.sheds(FLOODER, 11.0) for _ in range(50)) == 2
        assert gate.shed == 46 + 48
        # Another /24 is never shed; the flooder's own /24 is not full (8 of 24 KiB),
        # so a neighbour there is not either.
        assert not any(gate.sheds(OTHER, 11.0) for _ in range(50))
        assert not any(gate.sheds(NEIGHBOUR, 11.0) for _ in range(50))
    finally:
        store.close()


@pytest.mark.parametrize("engine", ["memory", "sqlite"])
def test_a_full_subnet_is_shed_and_expiry_opens_the_gate(engine: str, tmp_path: Path) -> None:
    store = make_store(engine, tmp_path)
    gate = StoreGate(store, Source.client, host=Limit(2.0, 4.0), subnet=Limit(4.0, 8.0))
    now = time.time()
    try:
        # Three IPs of one /24 fill its 24 KiB with records that live 60 s.
        for ip in (FLOODER, NEIGHBOUR, "127.0.66.3"):
            fill(store, ip, now, ttl=60)
        fresh = "127.0.66.4"
        assert store.nearly_full(Source.client(fresh))
        assert sum(not gate.sheds(fresh, 0.0) for _ in range(50)) == 4
        assert not store.nearly_full(Source.client(OTHER))
        # Once they expire and a sweep runs, the /24 has room and nothing is shed.
        assert store.expire(now + 120) > 0
        assert not store.nearly_full(Source.client(fresh))
        assert not any(gate.sheds(fresh, 1.0) for _ in range(50))
    finally:
        store.close()
