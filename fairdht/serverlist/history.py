"""The git-like history of a node's server lists, in ``<data-dir>/history.sqlite``.

Two kinds of commits share one file (docs/serverlist.md, "History"):

- **spine** commits (``checkpoint``, ``rollback``): one per control that K trusted
  maintainer keys agreed on. Their id is the control's spine id
  (``fairdht.serverlist.spine``), derived from the signed body alone, and their parent
  is the spine id the body names, so every node gives them the same id and parent.
  Their root and member list are the signed ones, never the node's own list.
- **local** commits (``sync``): this node's own observations between spine commits.
  Their id is BLAKE2b-256 over (parent, time, root, entries) and differs per node.

Every commit also names ``prev``, the commit this node wrote before it (its own
order). Entries are slot changes (``fairdht.serverlist.diff``): added, removed,
changed (address, name or game version), quarantined, and withdrawn (announced and
withdrawn between two reads; known from the signed tombstone). A spine commit the node
applied live is ``observed`` (its entries step the node's own list); one rebuilt after
the fact is not (its entries are the signed member list's diff against its parent's).

Compaction folds local commits older than a retention into the spine commit they lead
to: its entries become the net diff of the span and per-author counts move to
``blame_counts``, so ``diff`` and ``blame`` keep working; spine commits are kept.

The same file holds the accepted trust policy per network, the raw control records
already applied (to recognise replays), fetched member lists and tombstones seen.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fairdht.errors import NotFoundError, RecordError, UsageError
from fairdht.records.canonical import canonical_pack
from fairdht.records.envelope import Record
from fairdht.records.kinds.server import SERVER_KIND
from fairdht.serverlist.diff import (
    DiffEntry,
    Slot,
    SlotState,
    State,
    diff_states,
    listing_state,
    members_state,
)
from fairdht.serverlist.listing import Listing
from fairdht.serverlist.members import MemberList, decode_members
from fairdht.serverlist.policy import Control, Policy
from fairdht.serverlist.spine import (
    NO_PARENT,
    body_bytes,
    body_from_bytes,
    spine_id,
    spine_id_of_body,
)

__all__ = [
    "DEFAULT_LOCAL_RETENTION",
    "BlameRow",
    "Commit",
    "CommitEntry",
    "Compaction",
    "History",
    "commit_id",
]

CommitKind = Literal["sync", "checkpoint", "rollback"]
# Local commits older than this are folded into the spine commit they lead to.
DEFAULT_LOCAL_RETENTION = 7 * 24 * 3600
_SCHEMA_VERSION = 2
_TOMBSTONE_MEMORY = 24 * 3600

_SCHEMA = """
CREATE TABLE IF NOT EXISTS commits (
    id BLOB PRIMARY KEY, network TEXT NOT NULL, n INTEGER NOT NULL, parent BLOB, prev BLOB,
    time INTEGER NOT NULL, kind TEXT NOT NULL, root BLOB NOT NULL, version INTEGER NOT NULL,
    note TEXT NOT NULL, local INTEGER NOT NULL, observed INTEGER NOT NULL, body BLOB,
    members BLOB, count INTEGER NOT NULL, folded INTEGER NOT NULL, UNIQUE (network, n));
CREATE TABLE IF NOT EXISTS entries (
    commit_id BLOB NOT NULL, op TEXT NOT NULL, author BLOB NOT NULL, subkey BLOB NOT NULL,
    leaf BLOB NOT NULL, status TEXT NOT NULL, address TEXT NOT NULL, name TEXT NOT NULL,
    game_version TEXT NOT NULL, seq INTEGER NOT NULL, at INTEGER NOT NULL, net INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS entries_by_commit ON entries (commit_id);
CREATE TABLE IF NOT EXISTS state (
    network TEXT NOT NULL, author BLOB NOT NULL, subkey BLOB NOT NULL, leaf BLOB NOT NULL,
    status TEXT NOT NULL, address TEXT NOT NULL, name TEXT NOT NULL, game_version TEXT NOT NULL,
    seq INTEGER NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (network, author, subkey));
CREATE TABLE IF NOT EXISTS blame_counts (
    network TEXT NOT NULL, author BLOB NOT NULL, op TEXT NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY (network, author, op));
CREATE TABLE IF NOT EXISTS tombstones_seen (
    network TEXT NOT NULL, author BLOB NOT NULL, subkey BLOB NOT NULL, seq INTEGER NOT NULL,
    seen_at INTEGER NOT NULL, PRIMARY KEY (network, author, subkey));
CREATE TABLE IF NOT EXISTS policy (
    network TEXT PRIMARY KEY, version INTEGER NOT NULL, root BLOB, members BLOB,
    closed_until INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS applied_controls (
    network TEXT NOT NULL, version INTEGER NOT NULL, kind TEXT NOT NULL, raw BLOB NOT NULL,
    PRIMARY KEY (network, raw));
CREATE TABLE IF NOT EXISTS member_lists (blob_id BLOB PRIMARY KEY, data BLOB NOT NULL);
"""
_COLUMNS = (
    "id, network, n, parent, prev, time, kind, root, version, note, local, observed, body, "
    "members, count, folded"
)
_ENTRY_COLUMNS = "op, author, subkey, leaf, status, address, name, game_version, seq, at"


@dataclass(frozen=True, slots=True)
class CommitEntry:
    """One change in a commit, as stored (the state after it, or before it for a removal)."""

    op: str
    author: bytes
    subkey: bytes
    leaf: bytes
    status: str
    address: str
    name: str
    game_version: str
    seq: int
    at: int  # issued_at of the signed record (announcement or tombstone) behind it

    def row(self) -> list[Any]:
        """The fields a local commit id covers."""
        return [
            self.op,
            self.author,
            self.subkey,
            self.leaf,
            self.status,
            self.address,
            self.name,
            self.game_version,
            self.seq,
            self.at,
        ]

    def as_diff(self) -> DiffEntry:
        """The entry as a diff step."""
        state = SlotState(
            self.leaf,
            "quarantined" if self.status == "quarantined" else "listed",
            self.address,
            self.name,
            self.game_version,
            self.seq,
            self.at,
        )
        if self.op in ("removed", "withdrawn"):
            return DiffEntry(self.op, self.author, self.subkey, None, state)  # type: ignore[arg-type]
        return DiffEntry(self.op, self.author, self.subkey, state)  # type: ignore[arg-type]

    @classmethod
    def of(cls, d: DiffEntry) -> CommitEntry:
        """Store a diff step."""
        s = d.shown
        assert s is not None
        return cls(
            d.op,
            d.author,
            d.subkey,
            s.leaf,
            s.status,
            s.address,
            s.name,
            s.game_version,
            s.seq,
            s.at,
        )

    def to_json(self) -> dict[str, Any]:
        """JSON form (hex for bytes)."""
        return {
            "op": self.op,
            "author": self.author.hex(),
            "subkey": self.subkey.hex(),
            "leaf": self.leaf.hex(),
            "status": self.status,
            "address": self.address,
            "name": self.name,
            "game_version": self.game_version,
            "seq": self.seq,
            "at": self.at,
        }


_OPS = ("added", "changed", "removed", "quarantined", "withdrawn")


@dataclass(frozen=True, slots=True)
class Commit:
    """A commit of one network's history."""

    id: bytes
    network: str
    n: int
    parent: bytes | None
    prev: bytes | None
    time: int
    kind: CommitKind
    root: bytes
    version: int
    note: str
    local: bool
    observed: bool
    body: bytes | None = None  # spine commits: the signed control body (canonical bytes)
    members: bytes | None = None  # spine commits: blob id of the signed member list
    count: int = 0
    folded: int = 0  # local commits compacted into this one
    entries: tuple[CommitEntry, ...] = ()

    @property
    def spine(self) -> bool:
        """True for checkpoint and rollback commits (the same id on every node)."""
        return not self.local

    def counts(self) -> dict[str, int]:
        """Entries per op."""
        out = dict.fromkeys(_OPS, 0)
        for e in self.entries:
            out[e.op] = out.get(e.op, 0) + 1
        return out

    def to_json(self, *, with_entries: bool = False) -> dict[str, Any]:
        """JSON form of ``fairdht history`` (docs/serverlist.md)."""
        doc: dict[str, Any] = {
            "id": self.id.hex(),
            "network": self.network,
            "n": self.n,
            "parent": self.parent.hex() if self.parent else None,
            "prev": self.prev.hex() if self.prev else None,
            "time": self.time,
            "kind": self.kind,
            "local": self.local,
            "observed": self.observed,
            "root": self.root.hex(),
            "version": self.version,
            "note": self.note,
            "members": self.members.hex() if self.members else None,
            "count": self.count,
            "folded": self.folded,
            "counts": self.counts(),
        }
        if with_entries:
            doc["entries"] = [e.to_json() for e in self.entries]
        return doc


@dataclass(frozen=True, slots=True)
class BlameRow:
    """What one author key did on a network, from the whole history (compacted spans too)."""

    author: bytes
    added: int
    listed: int
    quarantined_now: int
    quarantined_ever: int
    removed: int
    changed: int = 0
    withdrawn: int = 0

    def to_json(self) -> dict[str, Any]:
        """JSON form of ``fairdht history blame``."""
        return {
            "author": self.author.hex(),
            "added": self.added,
            "listed": self.listed,
            "quarantined_now": self.quarantined_now,
            "quarantined_ever": self.quarantined_ever,
            "removed": self.removed,
            "changed": self.changed,
            "withdrawn": self.withdrawn,
        }


@dataclass(frozen=True, slots=True)
class Compaction:
    """What one compaction pass folded away."""

    commits: int
    entries: int


def commit_id(
    network: str,
    parent: bytes | None,
    time: int,
    root: bytes,
    version: int,
    note: str,
    entries: tuple[CommitEntry, ...],
) -> bytes:
    """The id of a local commit: BLAKE2b-256 over its canonical msgpack (docs/serverlist.md)."""
    rows = [e.row() for e in entries]
    doc = ["fairdht/commit/v2", network, parent or b"", time, root, version, note, rows]
    return hashlib.blake2b(canonical_pack(doc), digest_size=32).digest()


def _state_of(rows: Iterable[Any]) -> dict[Slot, SlotState]:
    state: dict[Slot, SlotState] = {}
    for op, author, subkey, leaf, status, address, name, gv, seq, at in rows:
        slot = (bytes(author), bytes(subkey))
        if op == "removed":
            state.pop(slot, None)
        elif op != "withdrawn":
            state[slot] = SlotState(bytes(leaf), status, address, name, gv, seq, at)
    return state


class History:
    """History, policy and member-list cache of one data dir (one SQLite file, WAL)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with self._db() as db:
            db.execute("PRAGMA journal_mode=WAL")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version < _SCHEMA_VERSION:
                # A history of schema 1 had per-node checkpoint ids: it is dropped and
                # rebuilt from the DHT (policy, applied controls and member lists stay).
                db.executescript(
                    "DROP TABLE IF EXISTS commits; DROP TABLE IF EXISTS entries;"
                    "DROP TABLE IF EXISTS state;"
                )
                db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
            db.executescript(_SCHEMA)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=30.0, isolation_level=None)) as db:
            # WAL with synchronous=NORMAL survives a crash of the process; a power cut may
            # lose the last commits, which the next round re-derives from the DHT.
            db.execute("PRAGMA synchronous=NORMAL")
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

    # -- writing ----------------------------------------------------------------

    @staticmethod
    def _local_state(db: sqlite3.Connection, network: str) -> dict[Slot, SlotState]:
        rows = db.execute(
            "SELECT author, subkey, leaf, status, address, name, game_version, seq, at "
            "FROM state WHERE network = ?",
            (network,),
        )
        return {
            (bytes(a), bytes(s)): SlotState(bytes(leaf), st, addr, name, gv, seq, at)
            for a, s, leaf, st, addr, name, gv, seq, at in rows
        }

    @staticmethod
    def _head_row(db: sqlite3.Connection, network: str) -> tuple[bytes | None, int]:
        head = db.execute(
            "SELECT id, n FROM commits WHERE network = ? ORDER BY n DESC LIMIT 1", (network,)
        ).fetchone()
        return (bytes(head[0]), head[1] + 1) if head else (None, 1)

    @staticmethod
    def _write_state(db: sqlite3.Connection, network: str, diff: Iterable[DiffEntry]) -> None:
        for d in diff:
            if d.op == "withdrawn":
                continue
            if d.after is None:
                db.execute(
                    "DELETE FROM state WHERE network = ? AND author = ? AND subkey = ?",
                    (network, d.author, d.subkey),
                )
                continue
            a = d.after
            db.execute(
                "INSERT OR REPLACE INTO state VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (network, d.author, d.subkey, a.leaf, a.status, a.address, a.name,
                 a.game_version, a.seq, a.at),
            )  # fmt: skip

    @staticmethod
    def _insert(db: sqlite3.Connection, c: Commit, *, net: bool = False) -> None:
        db.execute(
            f"INSERT INTO commits ({_COLUMNS}) VALUES ({', '.join('?' * 16)})",
            (c.id, c.network, c.n, c.parent, c.prev, c.time, c.kind, c.root, c.version, c.note,
             int(c.local), int(c.observed), c.body, c.members, c.count, c.folded),
        )  # fmt: skip
        db.executemany(
            "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(c.id, *e.row(), int(net)) for e in c.entries],
        )

    def _tombstone_entries(
        self,
        db: sqlite3.Connection,
        network: str,
        state: State,
        tombstones: Iterable[Record],
        now: int,
    ) -> list[DiffEntry]:
        out: list[DiffEntry] = []
        for t in tombstones:
            if t.kind != SERVER_KIND or t.network != network or not t.withdrawn:
                continue
            seen = db.execute(
                "SELECT seq FROM tombstones_seen WHERE network = ? AND author = ? AND subkey = ?",
                (network, t.author, t.subkey),
            ).fetchone()
            if seen is not None and seen[0] >= t.seq:
                continue
            db.execute(
                "INSERT OR REPLACE INTO tombstones_seen VALUES (?, ?, ?, ?, ?)",
                (network, t.author, t.subkey, t.seq, now),
            )
            held = state.get(t.slot)
            if held is not None and held.seq >= t.seq:
                continue  # a newer announcement re-used the slot
            if held is None:
                # Announced and withdrawn between two reads: the tombstone has no address.
                gone = SlotState(b"", "listed", "", "", "", t.seq, t.issued_at)
                out.append(DiffEntry("withdrawn", t.author, t.subkey, None, gone))
        return out

    def commit(
        self,
        listing: Listing,
        *,
        now: float,
        version: int = 0,
        note: str = "",
        tombstones: Iterable[Record] = (),
    ) -> Commit | None:
        """Record ``listing`` as a local commit; None when nothing the history tracks changed.

        ``tombstones`` (withdrawal records read this round) add a ``withdrawn`` entry for
        a slot this node never saw listed: a server announced and withdrawn between reads.
        """
        network = listing.network
        with self._tx() as db:
            old = self._local_state(db, network)
            diff = diff_states(old, listing_state(listing))
            diff += self._tombstone_entries(db, network, old, tombstones, int(now))
            if not diff:
                return None
            entries = tuple(CommitEntry.of(d) for d in diff)
            prev, n = self._head_row(db, network)
            t = int(now)
            root = listing.root
            cid = commit_id(network, prev, t, root, version, note, entries)
            c = Commit(cid, network, n, prev, prev, t, "sync", root, version, note, True, True,
                       entries=entries)  # fmt: skip
            self._insert(db, c)
            self._write_state(db, network, diff)
        return c

    def _members_of(self, db: sqlite3.Connection, blob_id: bytes | None) -> MemberList | None:
        if blob_id is None:
            return None
        row = db.execute("SELECT data FROM member_lists WHERE blob_id = ?", (blob_id,)).fetchone()
        return decode_members(bytes(row[0])) if row else None

    def commit_spine(
        self,
        control: Control,
        members: MemberList,
        *,
        now: float,
        listing: Listing | None = None,
        note: str = "",
        time: int | None = None,
    ) -> Commit | None:
        """Record the agreed ``control`` as a spine commit; None if it is already held.

        With ``listing`` (the node applied it live) the entries step the node's own list;
        without (rebuilt after the fact) they are the signed member list's diff against
        the previous spine commit's, and the node's own list is left alone.
        """
        if control.body is None:
            raise RecordError("a control without its signed body cannot enter the spine")
        cid = spine_id(control)
        network = control.network
        with self._tx() as db:
            if db.execute("SELECT 1 FROM commits WHERE id = ?", (cid,)).fetchone():
                return None
            prev, n = self._head_row(db, network)
            if listing is not None:
                diff = diff_states(self._local_state(db, network), listing_state(listing))
            else:
                before_row = db.execute(
                    "SELECT members FROM commits WHERE network = ? AND local = 0 AND version < ? "
                    "ORDER BY version DESC LIMIT 1",
                    (network, control.version),
                ).fetchone()
                before = self._members_of(db, bytes(before_row[0]) if before_row else None)
                old: State = members_state(before) if before else {}
                diff = diff_states(old, members_state(members))
            entries = tuple(CommitEntry.of(d) for d in diff)
            c = Commit(
                cid, network, n, None if control.parent == NO_PARENT else control.parent, prev, int(now) if time is None else time,
                control.kind, control.root, control.version, note, False, listing is not None,
                body_bytes(control.body), control.members, control.count, 0, entries,
            )  # fmt: skip
            self._insert(db, c)
            if listing is not None:
                self._write_state(db, network, diff)
        return c

    # -- reading ----------------------------------------------------------------

    def _commit_from_row(self, db: sqlite3.Connection, row: Any, *, entries: bool) -> Commit:
        cid = bytes(row[0])
        found: tuple[CommitEntry, ...] = ()
        if entries:
            found = tuple(
                CommitEntry(op, bytes(a), bytes(s), bytes(leaf), st, addr, name, gv, seq, at)
                for op, a, s, leaf, st, addr, name, gv, seq, at in db.execute(
                    f"SELECT {_ENTRY_COLUMNS} FROM entries WHERE commit_id = ? "
                    "ORDER BY op, author, subkey",
                    (cid,),
                )
            )

        def opt(v: Any) -> bytes | None:
            return bytes(v) if v is not None else None

        return Commit(
            cid, row[1], row[2], opt(row[3]), opt(row[4]), row[5], row[6], bytes(row[7]), row[8],
            row[9], bool(row[10]), bool(row[11]), opt(row[12]), opt(row[13]), row[14], row[15],
            found,
        )  # fmt: skip

    def log(
        self, network: str | None = None, *, limit: int = 100, entries: bool = True
    ) -> list[Commit]:
        """Newest commits first: in this node's order for one network, by time for all.

        A spine commit's time is when it was signed, so it can be older than the local
        commit written before it; the order a node wrote its commits in is ``n``.
        """
        query = f"SELECT {_COLUMNS} FROM commits"
        params: tuple[Any, ...] = ()
        if network is not None:
            query += " WHERE network = ? ORDER BY n DESC LIMIT ?"
            params = (network,)
        else:
            query += " ORDER BY time DESC, n DESC LIMIT ?"
        with self._db() as db:
            rows = db.execute(query, (*params, limit)).fetchall()
            return [self._commit_from_row(db, r, entries=entries) for r in rows]

    def spine(self, network: str) -> list[Commit]:
        """The spine commits of ``network``, oldest version first (without entries)."""
        with self._db() as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM commits WHERE network = ? AND local = 0 ORDER BY version",
                (network,),
            ).fetchall()
            return [self._commit_from_row(db, r, entries=False) for r in rows]

    def head(self, network: str) -> Commit | None:
        """The newest commit of ``network``."""
        with self._db() as db:
            row = db.execute(
                f"SELECT {_COLUMNS} FROM commits WHERE network = ? ORDER BY n DESC LIMIT 1",
                (network,),
            ).fetchone()
            return self._commit_from_row(db, row, entries=True) if row else None

    def show(self, prefix: str, network: str | None = None) -> Commit:
        """The commit whose hex id starts with ``prefix`` (4+ hex digits), or ``vN`` of ``network``."""
        text = prefix.strip().lower()
        with self._db() as db:
            if text.startswith("v") and text[1:].isdigit():
                if network is None:
                    raise UsageError(f"{text} names a checkpoint version: give the network")
                rows = db.execute(
                    f"SELECT {_COLUMNS} FROM commits WHERE network = ? AND local = 0 "
                    "AND version = ?",
                    (network, int(text[1:])),
                ).fetchall()
                if not rows:
                    raise NotFoundError(f"no checkpoint or rollback {text} on {network}")
                return self._commit_from_row(db, rows[0], entries=True)
            if len(text) < 4 or any(c not in "0123456789abcdef" for c in text):
                raise UsageError("a commit is a checkpoint version vN or at least 4 hex digits")
            query = f"SELECT {_COLUMNS} FROM commits WHERE hex(id) LIKE ?"
            params: tuple[Any, ...] = (text.upper() + "%",)
            if network is not None:
                query += " AND network = ?"
                params += (network,)
            rows = db.execute(query + " LIMIT 2", params).fetchall()
            if not rows:
                raise NotFoundError(f"no commit starts with {text}")
            if len(rows) > 1:
                raise UsageError(f"commit id prefix {text} is ambiguous; give more digits")
            return self._commit_from_row(db, rows[0], entries=True)

    def state_at(self, commit: Commit, *, signed: bool | None = None) -> dict[Slot, SlotState]:
        """The list at ``commit``: the signed member list, or this node's own list then.

        ``signed`` defaults to True for spine commits not applied live (the node had no
        list of its own then) and False otherwise; a spine commit's signed state is the
        same on every node.
        """
        if signed is None:
            signed = commit.spine and not commit.observed
        with self._db() as db:
            if signed:
                members = self._members_of(db, commit.members)
                if members is None:
                    raise NotFoundError(
                        f"the member list of {commit.kind} v{commit.version} is not held"
                    )
                return members_state(members)
            rows = db.execute(
                f"SELECT {', '.join('e.' + c.strip() for c in _ENTRY_COLUMNS.split(','))} "
                "FROM entries e JOIN commits c ON c.id = e.commit_id "
                "WHERE c.network = ? AND c.observed = 1 AND c.n <= ? ORDER BY c.n",
                (commit.network, commit.n),
            )
            return _state_of(rows)

    def diff(self, network: str, old: str, new: str) -> tuple[Commit, Commit, list[DiffEntry]]:
        """The changes from ``old`` to ``new``: each a commit id prefix or a version ``vN``.

        A version compares signed member lists (the same on every node); a commit id
        compares what this node held at that commit (docs/serverlist.md, "Diffs").
        """
        a, b = self.show(old, network), self.show(new, network)
        if a.network != b.network:
            raise UsageError("both ends of a diff must be on one network")
        sa = self.state_at(a, signed=True if old.lower().startswith("v") else None)
        sb = self.state_at(b, signed=True if new.lower().startswith("v") else None)
        return a, b, diff_states(sa, sb)

    def between(self, network: str, lo: int, hi: int) -> list[Commit]:
        """Commits with ``lo < n <= hi`` in this node's order, oldest first, with entries."""
        with self._db() as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM commits WHERE network = ? AND n > ? AND n <= ? ORDER BY n",
                (network, lo, hi),
            ).fetchall()
            return [self._commit_from_row(db, r, entries=True) for r in rows]

    def verify_chain(self, network: str) -> bool:
        """True when every id matches its content and each commit names the one before it.

        Local ids cover parent, time, root and entries; spine ids cover the signed body
        (whose parent is the previous spine id), and the row's root and parent must be
        the body's.
        """
        with self._db() as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM commits WHERE network = ? ORDER BY n", (network,)
            ).fetchall()
            prev: bytes | None = None
            for row in rows:
                c = self._commit_from_row(db, row, entries=True)
                if c.prev != prev:
                    return False
                if c.local:
                    expected = commit_id(
                        c.network, c.parent, c.time, c.root, c.version, c.note, c.entries
                    )
                    if c.parent != c.prev or c.id != expected:
                        return False
                else:
                    if c.body is None:
                        return False
                    try:
                        body = body_from_bytes(c.kind, c.body)
                    except RecordError:
                        return False
                    root = getattr(body, "root", None) or getattr(body, "target_root", b"")
                    if (
                        c.id != spine_id_of_body(c.kind, c.network, body)
                        or (c.parent or NO_PARENT) != body.parent
                        or c.root != root
                    ):
                        return False
                prev = c.id
        return True

    def blame(self, network: str) -> list[BlameRow]:
        """Per author key: entries added, changed, removed, withdrawn; listed and quarantined."""
        with self._db() as db:
            ever = db.execute(
                "SELECT e.author, e.op, COUNT(*) FROM entries e JOIN commits c ON c.id = e.commit_id "
                "WHERE c.network = ? AND e.net = 0 AND (c.local = 1 OR c.observed = 1) "
                "GROUP BY e.author, e.op",
                (network,),
            ).fetchall()
            folded = db.execute(
                "SELECT author, op, count FROM blame_counts WHERE network = ?", (network,)
            ).fetchall()
            now_rows = db.execute(
                "SELECT author, status, COUNT(*) FROM state WHERE network = ? GROUP BY author, status",
                (network,),
            ).fetchall()
        table: dict[bytes, dict[str, int]] = {}
        for author, op, count in (*ever, *folded):
            row = table.setdefault(bytes(author), {})
            row[op] = row.get(op, 0) + count
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
                c.get("changed", 0),
                c.get("withdrawn", 0),
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

    def size(self, network: str) -> dict[str, int]:
        """Commits (local, spine) and entries held for ``network`` (for benchmarks and status)."""
        with self._db() as db:
            local, spine = db.execute(
                "SELECT COALESCE(SUM(local), 0), COALESCE(SUM(1 - local), 0) FROM commits "
                "WHERE network = ?",
                (network,),
            ).fetchone()
            entries = db.execute(
                "SELECT COUNT(*) FROM entries e JOIN commits c ON c.id = e.commit_id "
                "WHERE c.network = ?",
                (network,),
            ).fetchone()[0]
        return {"local_commits": local, "spine_commits": spine, "entries": entries}

    def vacuum(self) -> None:
        """Give the pages freed by compaction back to the file system (SQLite VACUUM)."""
        with self._db() as db:
            db.execute("VACUUM")

    # -- compaction ---------------------------------------------------------------

    def compact(
        self, network: str, *, now: float, retention: int = DEFAULT_LOCAL_RETENTION
    ) -> Compaction:
        """Fold local commits older than ``retention`` into the spine commit they lead to.

        The spine commit's entries become the net diff from the state before the span to
        its own; the span's per-author op counts move to ``blame_counts``. Spine commits
        are never removed, and a span with no later applied spine commit is kept.
        """
        if retention < 0:
            raise UsageError("the history retention must not be negative")
        cutoff = int(now) - retention
        removed_commits = removed_entries = 0
        with self._tx() as db:
            # A server tombstone lives at most its kind's TTL (900 s): one seen a day ago
            # is gone from the DHT and cannot be reported twice.
            db.execute(
                "DELETE FROM tombstones_seen WHERE network = ? AND seen_at < ?",
                (network, int(now) - _TOMBSTONE_MEMORY),
            )
            spine = db.execute(
                "SELECT id, n, observed, time FROM commits WHERE network = ? AND local = 0 ORDER BY n",
                (network,),
            ).fetchall()
            last_n = 0
            last_id: bytes | None = None
            for sid, sn, observed, stime in spine:
                span = db.execute(
                    "SELECT id FROM commits WHERE network = ? AND local = 1 AND n > ? AND n < ? "
                    "ORDER BY n",
                    (network, last_n, sn),
                ).fetchall()
                if span and observed and stime < cutoff:
                    removed_entries += self._fold(
                        db, network, bytes(sid), sn, last_n, last_id, span
                    )
                    removed_commits += len(span)
                    # The commit before the span (if any) is now the spine commit's prev.
                last_n, last_id = sn, bytes(sid)
        return Compaction(removed_commits, removed_entries)

    def _fold(
        self,
        db: sqlite3.Connection,
        network: str,
        sid: bytes,
        sn: int,
        last_n: int,
        last_id: bytes | None,
        span: list[Any],
    ) -> int:
        cols = ", ".join("e." + c.strip() for c in _ENTRY_COLUMNS.split(","))
        replay = (
            f"SELECT {cols} FROM entries e JOIN commits c ON c.id = e.commit_id "
            "WHERE c.network = ? AND c.observed = 1 AND c.n <= ? ORDER BY c.n"
        )
        prev_row = db.execute(
            "SELECT id, n FROM commits WHERE network = ? AND n < ? AND local = 1 AND n > ? "
            "ORDER BY n LIMIT 1",
            (network, sn, last_n),
        ).fetchone()
        first_n = prev_row[1]
        before = _state_of(db.execute(replay, (network, first_n - 1)))
        after = _state_of(db.execute(replay, (network, sn)))
        ids = [bytes(r[0]) for r in span] + [sid]
        marks = ", ".join("?" * len(ids))
        for author, op, count in db.execute(
            f"SELECT author, op, COUNT(*) FROM entries WHERE commit_id IN ({marks}) AND net = 0 "
            "GROUP BY author, op",
            ids,
        ).fetchall():
            db.execute(
                "INSERT INTO blame_counts VALUES (?, ?, ?, ?) ON CONFLICT (network, author, op) "
                "DO UPDATE SET count = count + excluded.count",
                (network, author, op, count),
            )
        gone = db.execute(
            f"SELECT COUNT(*) FROM entries WHERE commit_id IN ({marks})", ids
        ).fetchone()[0]
        db.execute(f"DELETE FROM entries WHERE commit_id IN ({marks})", ids)
        db.execute(f"DELETE FROM commits WHERE id IN ({', '.join('?' * len(span))})", ids[:-1])
        net = [CommitEntry.of(d) for d in diff_states(before, after)]
        db.executemany(
            "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(sid, *e.row(), 1) for e in net],
        )
        prev_of_span = db.execute(
            "SELECT id FROM commits WHERE network = ? AND n < ? ORDER BY n DESC LIMIT 1",
            (network, first_n),
        ).fetchone()
        db.execute(
            "UPDATE commits SET prev = ?, folded = folded + ? WHERE id = ?",
            (bytes(prev_of_span[0]) if prev_of_span else None, len(span), sid),
        )
        return int(gone) - len(net)

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
        """Raw control records applied (or taken into the spine) on ``network``, oldest first."""
        with self._db() as db:
            rows = db.execute(
                "SELECT raw FROM applied_controls WHERE network = ? ORDER BY version", (network,)
            )
            return [bytes(r[0]) for r in rows]

    def save_control(self, control: Control, members_data: bytes, policy: Policy | None) -> None:
        """Persist a control's records and member list, and (if applied) the new policy."""
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO member_lists VALUES (?, ?)", (control.members, members_data)
            )
            db.executemany(
                "INSERT OR IGNORE INTO applied_controls VALUES (?, ?, ?, ?)",
                [(control.network, control.version, control.kind, r.raw) for r in control.records],
            )
            if policy is not None:
                db.execute(
                    "INSERT OR REPLACE INTO policy VALUES (?, ?, ?, ?, ?)",
                    (control.network, policy.version, policy.root, control.members,
                     policy.closed_until),
                )  # fmt: skip

    def has_commit(self, cid: bytes) -> bool:
        """True when a commit with id ``cid`` is held."""
        with self._db() as db:
            return db.execute("SELECT 1 FROM commits WHERE id = ?", (cid,)).fetchone() is not None

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
