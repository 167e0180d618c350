"""The git-like history of a node's server lists, in ``<data-dir>/history.sqlite``.

A commit is (network, parent, time, kind, state root, control version, entries) and
its id is BLAKE2b-256 over the canonical msgpack of exactly those fields, so each
commit names its parent and the chain cannot be edited without changing every later id.
Kinds: ``sync`` (the list changed), ``checkpoint`` and ``rollback`` (a control record
was accepted and applied). Entry ops: ``added``, ``updated`` (same leaf, new seq: the
root is unchanged), ``removed`` and ``quarantined``. History only grows.

The same file holds the accepted trust policy per network (latest control version,
its root and member list, and how long an accepted rollback keeps the list closed),
the raw control records already applied (to recognise replays) and fetched member lists.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fairdht.errors import NotFoundError, UsageError
from fairdht.records.canonical import canonical_pack
from fairdht.serverlist.listing import Entry, Listing
from fairdht.serverlist.members import decode_members
from fairdht.serverlist.policy import Control, Policy

__all__ = ["BlameRow", "Commit", "CommitEntry", "History", "commit_id"]

CommitKind = Literal["sync", "checkpoint", "rollback"]
Op = Literal["added", "updated", "removed", "quarantined"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS commits (
    id BLOB PRIMARY KEY, network TEXT NOT NULL, n INTEGER NOT NULL, parent BLOB,
    time INTEGER NOT NULL, kind TEXT NOT NULL, root BLOB NOT NULL,
    version INTEGER NOT NULL, note TEXT NOT NULL, UNIQUE (network, n));
CREATE TABLE IF NOT EXISTS entries (
    commit_id BLOB NOT NULL, op TEXT NOT NULL, leaf BLOB NOT NULL, author BLOB NOT NULL,
    subkey BLOB NOT NULL, address TEXT NOT NULL, name TEXT NOT NULL, seq INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS entries_by_commit ON entries (commit_id);
CREATE TABLE IF NOT EXISTS state (
    network TEXT NOT NULL, leaf BLOB NOT NULL, status TEXT NOT NULL, author BLOB NOT NULL,
    subkey BLOB NOT NULL, address TEXT NOT NULL, name TEXT NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (network, leaf));
CREATE TABLE IF NOT EXISTS policy (
    network TEXT PRIMARY KEY, version INTEGER NOT NULL, root BLOB, members BLOB,
    closed_until INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS applied_controls (
    network TEXT NOT NULL, version INTEGER NOT NULL, kind TEXT NOT NULL, raw BLOB NOT NULL,
    PRIMARY KEY (network, raw));
CREATE TABLE IF NOT EXISTS member_lists (blob_id BLOB PRIMARY KEY, data BLOB NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class CommitEntry:
    """One change in a commit."""

    op: Op
    leaf: bytes
    author: bytes
    subkey: bytes
    address: str
    name: str
    seq: int

    def to_json(self) -> dict[str, Any]:
        """JSON form (hex for bytes)."""
        return {
            "op": self.op,
            "leaf": self.leaf.hex(),
            "author": self.author.hex(),
            "subkey": self.subkey.hex(),
            "address": self.address,
            "name": self.name,
            "seq": self.seq,
        }


@dataclass(frozen=True, slots=True)
class Commit:
    """A commit of one network's history."""

    id: bytes
    network: str
    n: int
    parent: bytes | None
    time: int
    kind: CommitKind
    root: bytes
    version: int
    note: str
    entries: tuple[CommitEntry, ...] = ()

    def counts(self) -> dict[str, int]:
        """Entries per op."""
        out = {"added": 0, "updated": 0, "removed": 0, "quarantined": 0}
        for e in self.entries:
            out[e.op] += 1
        return out

    def to_json(self, *, with_entries: bool = False) -> dict[str, Any]:
        """JSON form of ``fairdht history`` (docs/serverlist.md)."""
        doc: dict[str, Any] = {
            "id": self.id.hex(),
            "network": self.network,
            "n": self.n,
            "parent": self.parent.hex() if self.parent else None,
            "time": self.time,
            "kind": self.kind,
            "root": self.root.hex(),
            "version": self.version,
            "note": self.note,
            "counts": self.counts(),
        }
        if with_entries:
            doc["entries"] = [e.to_json() for e in self.entries]
        return doc


@dataclass(frozen=True, slots=True)
class BlameRow:
    """What one author key did on a network, from the whole history."""

    author: bytes
    added: int
    listed: int
    quarantined_now: int
    quarantined_ever: int
    removed: int

    def to_json(self) -> dict[str, Any]:
        """JSON form of ``fairdht history blame``."""
        return {
            "author": self.author.hex(),
            "added": self.added,
            "listed": self.listed,
            "quarantined_now": self.quarantined_now,
            "quarantined_ever": self.quarantined_ever,
            "removed": self.removed,
        }


def commit_id(
    network: str,
    parent: bytes | None,
    time: int,
    kind: str,
    root: bytes,
    version: int,
    note: str,
    entries: tuple[CommitEntry, ...],
) -> bytes:
    """BLAKE2b-256 over the canonical msgpack of the commit's fields (docs/serverlist.md)."""
    rows = [[e.op, e.leaf, e.author, e.subkey, e.address, e.name, e.seq] for e in entries]
    doc = ["fairdht/commit/v1", network, parent or b"", time, kind, root, version, note, rows]
    return hashlib.blake2b(canonical_pack(doc), digest_size=32).digest()


def _entry(op: Op, e: Entry) -> CommitEntry:
    r = e.record
    return CommitEntry(op, e.leaf, r.author, r.subkey, e.body.address, e.body.name, r.seq)


class History:
    """History, policy and member-list cache of one data dir (one SQLite file, WAL)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with self._db() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=30.0, isolation_level=None)) as db:
            yield db

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        # BEGIN IMMEDIATE: a node and a CLI writing the same file serialize here, so
        # the parent a commit names is always the head at the moment it is written.
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    # -- commits ---------------------------------------------------------------

    def _diff(self, db: sqlite3.Connection, listing: Listing) -> list[CommitEntry]:
        old = {
            bytes(leaf): (status, seq)
            for leaf, status, seq in db.execute(
                "SELECT leaf, status, seq FROM state WHERE network = ?", (listing.network,)
            )
        }
        entries: list[CommitEntry] = []
        now_seen: set[bytes] = set()
        for e in listing.listed:
            now_seen.add(e.leaf)
            prev = old.get(e.leaf)
            if prev is None or prev[0] != "listed":
                entries.append(_entry("added", e))
            elif prev[1] != e.record.seq:
                entries.append(_entry("updated", e))
        for e in (*listing.quarantined, *listing.distrusted):
            now_seen.add(e.leaf)
            prev = old.get(e.leaf)
            if prev is None or prev[0] != "quarantined":
                entries.append(_entry("quarantined", e))
        gone = [leaf for leaf in old if leaf not in now_seen]
        for leaf in gone:
            row = db.execute(
                "SELECT author, subkey, address, name, seq FROM state WHERE network = ? AND leaf = ?",
                (listing.network, leaf),
            ).fetchone()
            entries.append(
                CommitEntry("removed", leaf, bytes(row[0]), bytes(row[1]), row[2], row[3], row[4])
            )
        return sorted(entries, key=lambda c: (c.op, c.leaf))

    def commit(
        self,
        listing: Listing,
        *,
        now: float,
        kind: CommitKind = "sync",
        version: int = 0,
        note: str = "",
    ) -> Commit | None:
        """Record ``listing`` as the new state of its network; None if a sync changed nothing.

        Control commits (checkpoint, rollback) are written even without a diff, so the
        history shows when each was applied.
        """
        network = listing.network
        with self._tx() as db:
            entries = tuple(self._diff(db, listing))
            if not entries and kind == "sync":
                return None
            head = db.execute(
                "SELECT id, n FROM commits WHERE network = ? ORDER BY n DESC LIMIT 1", (network,)
            ).fetchone()
            parent = bytes(head[0]) if head else None
            n = head[1] + 1 if head else 1
            root = listing.root
            t = int(now)
            cid = commit_id(network, parent, t, kind, root, version, note, entries)
            db.execute(
                "INSERT INTO commits VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (cid, network, n, parent, t, kind, root, version, note),
            )
            db.executemany(
                "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (cid, e.op, e.leaf, e.author, e.subkey, e.address, e.name, e.seq)
                    for e in entries
                ],
            )
            db.execute("DELETE FROM state WHERE network = ?", (network,))
            rows = [("listed", e) for e in listing.listed]
            rows += [("quarantined", e) for e in (*listing.quarantined, *listing.distrusted)]
            db.executemany(
                "INSERT OR REPLACE INTO state VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        network,
                        e.leaf,
                        status,
                        e.record.author,
                        e.record.subkey,
                        e.body.address,
                        e.body.name,
                        e.record.seq,
                    )
                    for status, e in rows
                ],
            )
        return Commit(cid, network, n, parent, t, kind, root, version, note, entries)

    def _commit_from_row(self, db: sqlite3.Connection, row: Any, *, entries: bool) -> Commit:
        cid = bytes(row[0])
        found: tuple[CommitEntry, ...] = ()
        if entries:
            found = tuple(
                CommitEntry(op, bytes(leaf), bytes(a), bytes(s), addr, name, seq)
                for op, leaf, a, s, addr, name, seq in db.execute(
                    "SELECT op, leaf, author, subkey, address, name, seq FROM entries "
                    "WHERE commit_id = ? ORDER BY op, leaf",
                    (cid,),
                )
            )
        parent = bytes(row[3]) if row[3] is not None else None
        return Commit(
            cid, row[1], row[2], parent, row[4], row[5], bytes(row[6]), row[7], row[8], found
        )

    def log(self, network: str | None = None, *, limit: int = 100) -> list[Commit]:
        """Newest commits first (of one network, or of all)."""
        query = "SELECT * FROM commits"
        params: tuple[Any, ...] = ()
        if network is not None:
            query += " WHERE network = ?"
            params = (network,)
        query += " ORDER BY time DESC, n DESC LIMIT ?"
        with self._db() as db:
            rows = db.execute(query, (*params, limit)).fetchall()
            return [self._commit_from_row(db, r, entries=True) for r in rows]

    def head(self, network: str) -> Commit | None:
        """The newest commit of ``network``."""
        with self._db() as db:
            row = db.execute(
                "SELECT * FROM commits WHERE network = ? ORDER BY n DESC LIMIT 1", (network,)
            ).fetchone()
            return self._commit_from_row(db, row, entries=True) if row else None

    def show(self, prefix: str) -> Commit:
        """The commit whose hex id starts with ``prefix`` (at least 4 hex digits)."""
        text = prefix.strip().lower()
        if len(text) < 4 or any(c not in "0123456789abcdef" for c in text):
            raise UsageError("a commit id is at least 4 hex digits")
        with self._db() as db:
            rows = db.execute(
                "SELECT * FROM commits WHERE hex(id) LIKE ? LIMIT 2", (text.upper() + "%",)
            ).fetchall()
            if not rows:
                raise NotFoundError(f"no commit starts with {text}")
            if len(rows) > 1:
                raise UsageError(f"commit id prefix {text} is ambiguous; give more digits")
            return self._commit_from_row(db, rows[0], entries=True)

    def verify_chain(self, network: str) -> bool:
        """True when every commit's id matches its content and names the one before it."""
        with self._db() as db:
            rows = db.execute(
                "SELECT * FROM commits WHERE network = ? ORDER BY n", (network,)
            ).fetchall()
            parent: bytes | None = None
            for row in rows:
                c = self._commit_from_row(db, row, entries=True)
                expected = commit_id(
                    c.network, c.parent, c.time, c.kind, c.root, c.version, c.note, c.entries
                )
                if c.parent != parent or c.id != expected:
                    return False
                parent = c.id
        return True

    def blame(self, network: str) -> list[BlameRow]:
        """Per author key: entries added, listed now, quarantined now and ever, removed."""
        with self._db() as db:
            ever = db.execute(
                "SELECT e.author, e.op, COUNT(*) FROM entries e JOIN commits c ON c.id = e.commit_id "
                "WHERE c.network = ? GROUP BY e.author, e.op",
                (network,),
            ).fetchall()
            now_rows = db.execute(
                "SELECT author, status, COUNT(*) FROM state WHERE network = ? GROUP BY author, status",
                (network,),
            ).fetchall()
        table: dict[bytes, dict[str, int]] = {}
        for author, op, count in ever:
            table.setdefault(bytes(author), {})[op] = count
        for author, status, count in now_rows:
            table.setdefault(bytes(author), {})["now_" + status] = count
        rows = [
            BlameRow(
                author,
                c.get("added", 0),
                c.get("now_listed", 0),
                c.get("now_quarantined", 0),
                c.get("quarantined", 0),
                c.get("removed", 0),
            )
            for author, c in table.items()
        ]
        return sorted(rows, key=lambda r: (-r.quarantined_ever, -r.added, r.author))

    def state_leaves(self, network: str, status: str = "listed") -> frozenset[bytes]:
        """Leaves of the current state with ``status`` (listed or quarantined)."""
        with self._db() as db:
            rows = db.execute(
                "SELECT leaf FROM state WHERE network = ? AND status = ?", (network, status)
            )
            return frozenset(bytes(r[0]) for r in rows)

    def networks(self) -> list[str]:
        """Networks with any commit or policy, sorted."""
        with self._db() as db:
            names = {r[0] for r in db.execute("SELECT DISTINCT network FROM commits")}
            names |= {r[0] for r in db.execute("SELECT network FROM policy")}
        return sorted(names)

    # -- policy, controls and member lists -------------------------------------

    def policy(self, network: str) -> Policy:
        """The trust policy this data dir has accepted for ``network``."""
        with self._db() as db:
            row = db.execute(
                "SELECT version, root, members, closed_until FROM policy WHERE network = ?",
                (network,),
            ).fetchone()
        if row is None:
            return Policy()
        version, root, members_id, closed_until = row
        leaves: frozenset[bytes] = frozenset()
        if members_id is not None:
            data = self.member_list(bytes(members_id))
            if data is not None:
                leaves = frozenset(decode_members(data).leaves)
        return Policy(version, bytes(root) if root else None, leaves, closed_until)

    def held_raw(self, network: str) -> frozenset[bytes]:
        """Raw bytes of every control record already applied on ``network``."""
        with self._db() as db:
            rows = db.execute("SELECT raw FROM applied_controls WHERE network = ?", (network,))
            return frozenset(bytes(r[0]) for r in rows)

    def held_records(self, network: str) -> list[bytes]:
        """Raw control records applied on ``network``, oldest version first."""
        with self._db() as db:
            rows = db.execute(
                "SELECT raw FROM applied_controls WHERE network = ? ORDER BY version", (network,)
            )
            return [bytes(r[0]) for r in rows]

    def save_control(self, control: Control, members_data: bytes, policy: Policy) -> None:
        """Persist an accepted control: its records, its member list and the new policy."""
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO member_lists VALUES (?, ?)", (control.members, members_data)
            )
            db.executemany(
                "INSERT OR IGNORE INTO applied_controls VALUES (?, ?, ?, ?)",
                [(control.network, control.version, control.kind, r.raw) for r in control.records],
            )
            db.execute(
                "INSERT OR REPLACE INTO policy VALUES (?, ?, ?, ?, ?)",
                (
                    control.network,
                    policy.version,
                    policy.root,
                    control.members,
                    policy.closed_until,
                ),
            )

    def member_list(self, blob_id: bytes) -> bytes | None:
        """A cached member list by blob id."""
        with self._db() as db:
            row = db.execute(
                "SELECT data FROM member_lists WHERE blob_id = ?", (blob_id,)
            ).fetchone()
        return bytes(row[0]) if row else None

    def put_member_list(self, blob_id: bytes, data: bytes) -> None:
        """Cache a member list (the caller checked that ``data`` hashes to ``blob_id``)."""
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO member_lists VALUES (?, ?)", (blob_id, data))
