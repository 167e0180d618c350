"""Record storage: the interface, its rules, and the in-memory and SQLite stores.

``from fairdht.dht.storage import RecordStore, MemoryRecordStore, SQLiteRecordStore,
Quotas`` (docs/dev/CONTRACTS.md). The slot rules live in ``storage_rules.decide_put``,
shared by both stores; records are charged to the ``Source`` that handed them over
(fairdht.dht.source_quota). The storage sections of docs/protocol.md state the rules.
"""

from fairdht.dht.source_quota import LEGACY, LOCAL, Source
from fairdht.dht.storage_base import BaseRecordStore, RecordStore, StorageError
from fairdht.dht.storage_memory import MemoryRecordStore
from fairdht.dht.storage_rules import MIB, Evict, PutOutcome, Quotas, Usage, decide_put
from fairdht.dht.storage_sqlite import (
    RECORDS_FILENAME,
    SCHEMA_VERSION,
    SQLiteRecordStore,
    Synchronous,
)

__all__ = [
    "LEGACY",
    "LOCAL",
    "MIB",
    "RECORDS_FILENAME",
    "SCHEMA_VERSION",
    "BaseRecordStore",
    "Evict",
    "MemoryRecordStore",
    "PutOutcome",
    "Quotas",
    "RecordStore",
    "SQLiteRecordStore",
    "Source",
    "StorageError",
    "Synchronous",
    "Usage",
    "decide_put",
]
