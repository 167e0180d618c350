"""Record storage: the interface, its rules, and the in-memory and SQLite stores.

``from fairdht.dht.storage import RecordStore, MemoryRecordStore, SQLiteRecordStore,
Quotas`` (docs/dev/CONTRACTS.md). The slot rules live in ``storage_rules.decide_put``,
shared by both stores; the storage section of docs/protocol.md states them.
"""

from fairdht.dht.storage_base import BaseRecordStore, RecordStore, StorageError
from fairdht.dht.storage_memory import MemoryRecordStore
from fairdht.dht.storage_rules import MIB, PutOutcome, Quotas, Usage, decide_put
from fairdht.dht.storage_sqlite import (
    RECORDS_FILENAME,
    SCHEMA_VERSION,
    SQLiteRecordStore,
    Synchronous,
)

__all__ = [
    "MIB",
    "RECORDS_FILENAME",
    "SCHEMA_VERSION",
    "BaseRecordStore",
    "MemoryRecordStore",
    "PutOutcome",
    "Quotas",
    "RecordStore",
    "SQLiteRecordStore",
    "StorageError",
    "Synchronous",
    "Usage",
    "decide_put",
]
