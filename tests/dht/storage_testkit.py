"""Signed records and stores for the storage tests (a helper module, not a test file)."""

from __future__ import annotations

from pathlib import Path

from fairdht.dht.storage import MemoryRecordStore, Quotas, RecordStore, SQLiteRecordStore
from fairdht.identity import SigningKey
from fairdht.records import Record, sign_record, sign_withdrawal
from fairdht.records.kinds.server import SERVER_KIND, ServerAnnouncement, server_shard

NOW = 1_800_000_000
NETWORK = "storetest"
STORE_KINDS = ["memory", "sqlite"]


def author(i: int) -> SigningKey:
    """The i-th test author, from a fixed seed."""
    return SigningKey(bytes([i + 1]) * 32)


def subkey_in_shard(i: int, shard: int, n: int = 0) -> bytes:
    """The n-th subkey of author ``i`` whose server record lands in ``shard`` (one DHT key)."""
    pub = author(i).public_key.raw
    found = -1
    for candidate in range(100_000):
        subkey = b"s" + candidate.to_bytes(4, "big")
        if server_shard(pub, subkey) == shard:
            found += 1
            if found == n:
                return subkey
    raise AssertionError("no subkey found")


def record(
    i: int,
    subkey: bytes = b"s1",
    seq: int = 1,
    *,
    now: float = NOW,
    ttl: int = 600,
    name: str = "srv",
    withdrawn: bool = False,
) -> Record:
    """A server record (or a withdrawal) by author ``i`` in slot ``subkey``."""
    key = author(i)
    if withdrawn:
        return sign_withdrawal(key, SERVER_KIND, NETWORK, subkey, now=now, ttl=ttl, seq=seq)
    body = ServerAnnouncement(address=f"127.0.{i}.1:4000", name=name)
    return sign_record(key, SERVER_KIND, NETWORK, subkey, body, now=now, ttl=ttl, seq=seq)


def open_store(
    kind: str, tmp: Path, quotas: Quotas | None = None, *, synchronous: str = "full"
) -> RecordStore:
    """A new (or reopened) store of ``kind`` whose SQLite file, if any, is in ``tmp``."""
    if kind == "memory":
        return MemoryRecordStore(quotas)
    assert synchronous in ("full", "normal")
    return SQLiteRecordStore(
        tmp / "records.sqlite",
        quotas=quotas,
        synchronous="full" if synchronous == "full" else "normal",
    )
