"""The durable record store: one SQLite file (WAL) in the node's data dir.

Durability: every ``put`` is its own transaction, committed before ``put`` returns.
In WAL mode with ``synchronous=FULL`` the WAL is fsynced at every commit, so an
acknowledged record survives ``kill -9`` and power loss; with ``synchronous=NORMAL``
it survives ``kill -9`` but the last commits may be lost on power loss
(https://www.sqlite.org/wal.html, https://www.sqlite.org/pragma.html#pragma_synchronous).

Each row also names the source it is charged to (``source``: the account, and
``source_net``: its /24 or /48, see fairdht.dht.source_quota). Schema 2 added those
two columns; a schema-1 file is migrated when opened (the columns are added with the
default "", the legacy source).

Records are kept as their raw signed bytes and decoded (signature included) with
``decode_record`` when loaded, so a row damaged on disk is dropped and counted, never
served. A full disk (SQLITE_FULL, or a failed write such as a file-size limit) turns
into ``QuotaExceeded``: the put is refused, and reads and every acknowledged record
stay available.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from fairdht.dht.source_quota import Source
from fairdht.dht.storage_base import BaseRecordStore, Held, Slot, StorageError
from fairdht.dht.storage_rules import Quotas, Usage
from fairdht.errors import QuotaExceeded, RecordError, UsageError
from fairdht.records import Record, decode_record

__all__ = ["RECORDS_FILENAME", "SCHEMA_VERSION", "SQLiteRecordStore", "Synchronous"]

RECORDS_FILENAME = "records.sqlite"
SCHEMA_VERSION = 2
Synchronous = Literal["full", "normal"]

# sqlite3 result codes (https://www.sqlite.org/rescode.html); the low byte is the
# primary code. SQLITE_FULL is a full disk or max_page_count reached; SQLITE_IOERR
# covers a write refused by the OS, e.g. EFBIG past RLIMIT_FSIZE.
_SQLITE_FULL = 13
_SQLITE_IOERR = 10

_SCHEMA = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE records (
    key        BLOB    NOT NULL,
    author     BLOB    NOT NULL,
    subkey     BLOB    NOT NULL,
    seq        INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    size       INTEGER NOT NULL,
    raw        BLOB    NOT NULL,
    source     TEXT    NOT NULL DEFAULT '',
    source_net TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (key, author, subkey)
);
CREATE INDEX records_by_author ON records (author);
CREATE INDEX records_by_expiry ON records (expires_at);
CREATE INDEX records_by_source_net ON records (source_net, expires_at);
"""

# Schema 1 -> 2: the source columns (rows from before are the legacy source "").
_MIGRATE_1_TO_2 = """
ALTER TABLE records ADD COLUMN source TEXT NOT NULL DEFAULT '';
ALTER TABLE records ADD COLUMN source_net TEXT NOT NULL DEFAULT '';
CREATE INDEX records_by_source_net ON records (source_net, expires_at);
UPDATE schema_version SET version = 2;
"""

# Decoding verifies an Ed25519 signature (~150 us); rows read again are taken from
# this many cached decodings (raw bytes -> (key, record)): damaged bytes still miss.
_DECODE_CACHE = 4096


class SQLiteRecordStore(BaseRecordStore):
    """Records in an SQLite file (WAL), committed before ``put`` returns.

    ``synchronous`` is "full" (default: survives power loss) or "normal" (survives a
    process crash only; faster). ``check_integrity`` runs ``PRAGMA quick_check`` at
    open and refuses a damaged file with a ``StorageError`` that says what is wrong.
    ``max_pages`` caps the file (``PRAGMA max_page_count``): past it puts fail as on a
    full disk; operators may use it, tests use it to fill the disk.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        quotas: Quotas | None = None,
        synchronous: Synchronous = "full",
        check_integrity: bool = True,
        max_pages: int | None = None,
    ) -> None:
        super().__init__(quotas or Quotas())
        if synchronous not in ("full", "normal"):
            raise UsageError(f"synchronous must be 'full' or 'normal', not {synchronous!r}")
        self.path = Path(path)
        self.synchronous = synchronous
        self._lock = threading.RLock()
        self._depth = 0  # open savepoints (puts nested in a batch)
        self._decoded: dict[bytes, tuple[bytes, Record]] = {}
        self._conn: sqlite3.Connection | None = None
        self._count = 0
        self._bytes = 0
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open record store {self.path}: {exc}") from None
        try:
            self._setup(conn, check_integrity=check_integrity, max_pages=max_pages)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    # -- opening -------------------------------------------------------------------------

    def _setup(
        self, conn: sqlite3.Connection, *, check_integrity: bool, max_pages: int | None
    ) -> None:
        try:
            conn.execute("PRAGMA busy_timeout = 5000")
            if check_integrity:
                problems = _quick_check(conn)
                if problems:
                    raise StorageError(
                        f"record store {self.path} is damaged (PRAGMA quick_check): "
                        f"{'; '.join(problems)}. Move the file aside and restart: "
                        "the node fetches its records again from its peers."
                    )
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StorageError(f"record store {self.path}: WAL mode unavailable ({mode})")
            conn.execute(f"PRAGMA synchronous = {self.synchronous.upper()}")
            if max_pages is not None:
                conn.execute(f"PRAGMA max_page_count = {int(max_pages)}")
            self._ensure_schema(conn)
            count, size = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM records"
            ).fetchone()
            self._count, self._bytes = int(count), int(size)
            for key, account, net, rows, held in conn.execute(
                # One scan of the table (NOT INDEXED), as COUNT(*) above: damage in an
                # index is met, and reported, by the lookups that use it.
                "SELECT key, source, source_net, COUNT(*), SUM(size) FROM records NOT INDEXED "
                "GROUP BY key, source, source_net"
            ):
                source = Source(str(account), str(net))
                self._ledger.add(source, int(held), key=bytes(key), rows=int(rows))
        except sqlite3.DatabaseError as exc:
            # "file is not a database", a damaged header, an unreadable file.
            raise StorageError(f"cannot use record store {self.path}: {exc}") from None

    def _ensure_schema(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            tables = {
                row[0]
                for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
            if "schema_version" not in tables:
                if tables:
                    raise StorageError(
                        f"{self.path} is an SQLite file but not a fairdht record store "
                        f"(tables: {', '.join(sorted(tables))})"
                    )
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            else:
                row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
                if row[0] == 1:
                    for statement in _MIGRATE_1_TO_2.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                elif row[0] != SCHEMA_VERSION:
                    raise StorageError(
                        f"record store {self.path} has schema version {row[0]}; "
                        f"this fairdht reads version {SCHEMA_VERSION}"
                    )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StorageError(f"record store {self.path} is closed")
        return self._conn

    # -- primitives --------------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._lock:
            db = self._db
            if db.in_transaction:
                # Nested (a put inside ``batch``): a savepoint, so that a refused put's
                # evictions roll back alone and the outer transaction commits the rest.
                yield from self._savepoint(db)
                return
            before = (self._count, self._bytes)
            self._ledger.begin()
            try:
                db.execute("BEGIN IMMEDIATE")
                yield
                db.execute("COMMIT")
            except BaseException as exc:
                if db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        db.execute("ROLLBACK")
                # The counters moved with the writes that were just rolled back.
                self._count, self._bytes = before
                self._ledger.rollback()
                if isinstance(exc, sqlite3.Error):
                    raise self._write_failure(exc) from None
                raise
            self._ledger.commit()

    def _savepoint(self, db: sqlite3.Connection) -> Iterator[None]:
        self._depth += 1
        name = f"put{self._depth}"
        before = (self._count, self._bytes)
        mark = self._ledger.mark()
        try:
            db.execute(f"SAVEPOINT {name}")
            yield
            db.execute(f"RELEASE {name}")
        except BaseException as exc:
            with contextlib.suppress(sqlite3.Error):
                db.execute(f"ROLLBACK TO {name}")
                db.execute(f"RELEASE {name}")
            self._count, self._bytes = before
            self._ledger.rollback_to(mark)
            if isinstance(exc, sqlite3.Error):
                raise self._write_failure(exc) from None
            raise
        finally:
            self._depth -= 1

    def _write_failure(self, exc: sqlite3.Error) -> Exception:
        code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
        if code == _SQLITE_FULL:
            self._events["disk_full"] += 1
            return QuotaExceeded(
                f"disk full: record store {self.path} cannot grow ({exc}); "
                "stored records are still served"
            )
        if code == _SQLITE_IOERR:
            self._events["disk_full"] += 1
            return QuotaExceeded(
                f"disk full or failing: writing record store {self.path} failed "
                f"({getattr(exc, 'sqlite_errorname', exc)}); stored records are still served"
            )
        return StorageError(f"record store {self.path}: {exc}")

    def _decode_row(
        self, key: bytes, author: bytes, subkey: bytes, seq: int, raw: bytes
    ) -> Record | None:
        cached = self._decoded.get(raw)
        if cached is not None:
            record_key, record = cached
        else:
            try:
                record = decode_record(bytes(raw))
                record_key = record.key
            except RecordError:
                self._drop_corrupt(key, author, subkey)
                return None
        # Valid signed bytes in the wrong row (a misdirected write) are damage too.
        if (record_key, record.author, record.subkey, record.seq) != (key, author, subkey, seq):
            self._drop_corrupt(key, author, subkey)
            return None
        if cached is None:
            self._remember(key, record)
        return record

    def _remember(self, key: bytes, record: Record) -> None:
        # Insertion-ordered dict as a FIFO cache: the oldest decoding goes first.
        if len(self._decoded) >= _DECODE_CACHE:
            del self._decoded[next(iter(self._decoded))]
        self._decoded[record.raw] = (key, record)

    def _drop_corrupt(self, key: bytes, author: bytes, subkey: bytes) -> None:
        # A row that no longer decodes (or no longer matches its columns) is disk
        # damage: never serve it, delete it so it stops counting against quotas.
        self._events["corrupt_dropped"] += 1
        with contextlib.suppress(QuotaExceeded, StorageError), self._transaction():
            self._delete((key, author, subkey))

    def _held(self, key: bytes, author: bytes, subkey: bytes) -> Held | None:
        row = self._db.execute(
            "SELECT seq, raw, source, source_net FROM records "
            "WHERE key = ? AND author = ? AND subkey = ?",
            (key, author, subkey),
        ).fetchone()
        if row is None:
            return None
        record = self._decode_row(key, author, subkey, row[0], row[1])
        return None if record is None else Held(record, Source(row[2], row[3]))

    def _usage(self, key: bytes, author: bytes, source: Source) -> Usage:
        db = self._db
        key_nets = self._ledger.key_nets(key)
        (author_count,) = db.execute(
            "SELECT COUNT(*) FROM records WHERE author = ?", (author,)
        ).fetchone()
        return Usage(
            key_count=sum(key_nets.values()),
            author_count=author_count,
            total_bytes=self._bytes,
            source_bytes=self._ledger.accounts[source.account],
            net_bytes=self._ledger.nets[source.net],
            key_nets=key_nets,
            nets=self._ledger.nets,
        )

    def _write(self, key: bytes, record: Record, source: Source, held: Held | None) -> None:
        # An UPDATE keeps the row (and its rowid) where it is, so a replacement of the
        # same size needs no new page, even on a full disk; the PRIMARY KEY names it.
        values = (
            *(record.seq, record.expires_at, len(record.raw), record.raw),
            *(source.account, source.net, key, record.author, record.subkey),
        )
        if held is None:
            sql = (
                "INSERT OR REPLACE INTO records (seq, expires_at, size, raw, source, "
                "source_net, key, author, subkey) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            )
        else:
            sql = (
                "UPDATE records SET seq = ?, expires_at = ?, size = ?, raw = ?, source = ?, "
                "source_net = ? WHERE key = ? AND author = ? AND subkey = ?"
            )
        self._db.execute(sql, values)
        if held is None:
            self._count += 1
        else:
            self._bytes -= len(held.record.raw)
            self._ledger.add(held.source, -len(held.record.raw), key=key, rows=-1)
        self._bytes += len(record.raw)
        self._ledger.add(source, len(record.raw), key=key, rows=1)
        self._remember(key, record)

    def _victim(self, net: str, key: bytes | None) -> Slot | None:
        # VICTIM_ORDER; records_by_source_net serves the store-wide case. Protected
        # authors (the node's trusted keys) are never chosen.
        spare = self._protected
        besides = f" AND author NOT IN ({','.join('?' * len(spare))})" if spare else ""
        where, args = (
            ("source_net = ?", [net]) if key is None else ("key = ? AND source_net = ?", [key, net])
        )
        row = self._db.execute(
            f"SELECT key, author, subkey FROM records WHERE {where}{besides} "
            "ORDER BY expires_at, key, author, subkey LIMIT 1",
            (*args, *spare),
        ).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def _delete(self, slot: Slot) -> None:
        row = self._db.execute(
            "DELETE FROM records WHERE key = ? AND author = ? AND subkey = ? "
            "RETURNING size, source, source_net",
            slot,
        ).fetchone()
        if row is not None:
            self._count -= 1
            self._bytes -= row[0]
            self._ledger.add(Source(row[1], row[2]), -row[0], key=slot[0], rows=-1)

    def _slot_row(self, key: bytes, author: bytes, subkey: bytes) -> tuple[bytes, str] | None:
        with self._lock:
            rows = self._read(
                "SELECT raw, source FROM records WHERE key = ? AND author = ? AND subkey = ?",
                (key, author, subkey),
            )
            return None if not rows else (bytes(rows[0][0]), str(rows[0][1]))

    def _earliest_expiry(self) -> int | None:
        with self._lock:
            (earliest,) = self._read("SELECT MIN(expires_at) FROM records")[0]
            return None if earliest is None else int(earliest)

    def _load(self, key: bytes) -> list[Record]:
        with self._lock:
            rows = self._read(
                "SELECT author, subkey, seq, raw FROM records WHERE key = ? ORDER BY author, subkey",
                (key,),
            )
            records = []
            for author, subkey, seq, raw in rows:
                record = self._decode_row(key, author, subkey, seq, raw)
                if record is not None:
                    records.append(record)
            return records

    def _remove_expired(self, now: float) -> int:
        # expires_at is an integer; a record is dead once expires_at <= now.
        rows = self._db.execute(
            "DELETE FROM records WHERE expires_at <= ? RETURNING size, source, source_net, key",
            (now,),
        ).fetchall()
        self._count -= len(rows)
        self._bytes -= sum(size for size, _, _, _ in rows)
        for size, account, net, key in rows:
            self._ledger.add(Source(account, net), -size, key=bytes(key), rows=-1)
        self._events["expired_removed"] += len(rows)
        return len(rows)

    # -- the rest of the interface ---------------------------------------------------------

    def keys(self) -> list[bytes]:
        """The sorted keys that hold at least one stored (maybe expired) record."""
        with self._lock:
            return [row[0] for row in self._read("SELECT DISTINCT key FROM records ORDER BY key")]

    def _read(self, sql: str, params: tuple[bytes | str, ...] = ()) -> list[Any]:
        # A read outside a put can still meet a damaged page or a failing disk; say so
        # in the project's terms instead of leaking sqlite3 errors to the DHT layer.
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"reading record store {self.path} failed: {exc}") from None

    def count(self) -> int:
        """The number of stored records (expired ones count until they are removed)."""
        return self._count

    def total_bytes(self) -> int:
        """The encoded size of every stored record, in bytes."""
        return self._bytes

    def integrity_check(self, *, full: bool = True) -> list[str]:
        """What ``PRAGMA integrity_check`` (or ``quick_check``) finds wrong; [] when sound."""
        with self._lock:
            return _quick_check(self._db, pragma="integrity_check" if full else "quick_check")

    def close(self) -> None:
        """Close the file (the last connection checkpoints the WAL); safe to call twice."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
                self._decoded.clear()
                self._ledger.clear()


def _quick_check(conn: sqlite3.Connection, *, pragma: str = "quick_check") -> list[str]:
    """The problems a read-only integrity check reports (at most 10), or []."""
    lines = [
        line.strip()
        for row in conn.execute(f"PRAGMA {pragma}(10)")
        for line in str(row[0]).splitlines()
        if line.strip() and not line.startswith("***")
    ]
    return [] if lines == ["ok"] else lines[:10]
