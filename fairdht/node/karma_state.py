"""A node's karma state in ``<data-dir>/karma.sqlite``: its own votes and replay marks.

Replay marks are the newest seq seen per vote slot. A replica that lost a withdrawal
or a changed vote may serve the older record again; the reader drops it
(fairdht.karma.votes.merge_votes). A mark is kept for one vote lifetime after it was
last raised, which is as long as an older record of its slot can still be live.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from fairdht.karma.policy import KarmaPolicy, load_policy
from fairdht.karma.votes import Slot
from fairdht.records.envelope import Record
from fairdht.records.kinds.karma import VOTE_KIND, VOTE_MAX_TTL, KarmaVote
from fairdht.trust import TrustStore

__all__ = [
    "MAX_MARKS",
    "POLICY_FILE_NAME",
    "STATE_FILE_NAME",
    "KarmaState",
    "OwnVote",
    "ReaderInputs",
    "reader_inputs",
]

POLICY_FILE_NAME = "karma-policy.toml"
STATE_FILE_NAME = "karma.sqlite"
TRUST_FILE_NAME = "trust.sqlite"

# Bounds the table: the oldest marks go first (a mark that old guards little).
MAX_MARKS = 200_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS marks (
    network TEXT NOT NULL, author BLOB NOT NULL, subkey BLOB NOT NULL,
    seq INTEGER NOT NULL, keep_until INTEGER NOT NULL,
    PRIMARY KEY (network, author, subkey));
CREATE INDEX IF NOT EXISTS marks_keep ON marks (keep_until);
CREATE TABLE IF NOT EXISTS own_votes (
    network TEXT NOT NULL, subkey BLOB NOT NULL, action TEXT, context TEXT,
    seq INTEGER NOT NULL, issued_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,
    withdrawn INTEGER NOT NULL, raw BLOB NOT NULL,
    PRIMARY KEY (network, subkey));
"""


@dataclass(frozen=True, slots=True)
class OwnVote:
    """A vote this node cast (or withdrew), as it last put it."""

    subject: bytes
    action: str
    context: str
    issued_at: int
    expires_at: int
    withdrawn: bool


class KarmaState:
    """The karma tables of one data dir; each call opens its own connection (WAL)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with self._db() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=10.0)) as db, db:
            yield db

    def high_water(self, network: str, *, now: float) -> dict[Slot, int]:
        """The replay marks of ``network`` still in force at ``now``."""
        with self._db() as db:
            rows = db.execute(
                "SELECT author, subkey, seq FROM marks WHERE network = ? AND keep_until >= ?",
                (network, int(now)),
            ).fetchall()
        return {(bytes(a), bytes(s)): int(q) for a, s, q in rows}

    def raise_marks(self, network: str, marks: Mapping[Slot, int], *, now: float) -> None:
        """Raise the marks of ``network`` to ``marks`` (never lowers one), then prune."""
        keep_until = int(now) + VOTE_MAX_TTL
        with self._db() as db:
            db.executemany(
                "INSERT INTO marks VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (network, author, subkey) DO UPDATE SET "
                "seq = excluded.seq, keep_until = excluded.keep_until "
                "WHERE excluded.seq > marks.seq",
                [(network, a, s, q, keep_until) for (a, s), q in marks.items()],
            )
            db.execute("DELETE FROM marks WHERE keep_until < ?", (int(now),))
            db.execute(
                "DELETE FROM marks WHERE rowid IN (SELECT rowid FROM marks "
                "ORDER BY keep_until DESC LIMIT -1 OFFSET ?)",
                (MAX_MARKS,),
            )

    def record_own(self, record: Record) -> None:
        """Remember a vote or withdrawal this node put (the newest per slot wins)."""
        if record.kind != VOTE_KIND:
            raise ValueError("only karma votes are recorded")
        body = None if record.withdrawn else record.body_as(KarmaVote)
        with self._db() as db:
            held = db.execute(
                "SELECT action, context FROM own_votes WHERE network = ? AND subkey = ?",
                (record.network, record.subkey),
            ).fetchone()
            action = body.action if body else (held[0] if held else None)
            context = body.context if body else (held[1] if held else None)
            db.execute(
                "INSERT INTO own_votes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (network, subkey) DO UPDATE SET action = excluded.action, "
                "context = excluded.context, seq = excluded.seq, "
                "issued_at = excluded.issued_at, expires_at = excluded.expires_at, "
                "withdrawn = excluded.withdrawn, raw = excluded.raw "
                "WHERE excluded.seq > own_votes.seq",
                (
                    record.network,
                    record.subkey,
                    action,
                    context,
                    record.seq,
                    record.issued_at,
                    record.expires_at,
                    int(record.withdrawn),
                    record.raw,
                ),
            )

    def own_votes(self, network: str, *, now: float) -> list[OwnVote]:
        """This node's votes on ``network`` still live at ``now``, newest first."""
        with self._db() as db:
            rows = db.execute(
                "SELECT subkey, action, context, issued_at, expires_at, withdrawn "
                "FROM own_votes WHERE network = ? AND expires_at > ? ORDER BY issued_at DESC",
                (network, int(now)),
            ).fetchall()
        return [
            OwnVote(bytes(sk[:32]), a or "", c or "", int(i), int(e), bool(w))
            for sk, a, c, i, e, w in rows
        ]


@dataclass(frozen=True, slots=True)
class ReaderInputs:
    """What a reading node brings to ``fetch_view``: its policy, raters and replay marks."""

    policy: KarmaPolicy
    trusted: frozenset[bytes]  # the trust store's ``karma`` role
    distrusted: frozenset[bytes]
    high_water: dict[Slot, int]


def reader_inputs(
    data_dir: Path, network: str, *, now: float, policy_path: Path | None = None
) -> ReaderInputs:
    """Load a node's karma view inputs from its data dir.

    The policy is ``policy_path`` if given, else ``DATA_DIR/karma-policy.toml`` if it
    exists, else the defaults; raters and distrusted keys come from ``trust.sqlite``.
    """
    data_dir = Path(data_dir)
    if policy_path is None and (data_dir / POLICY_FILE_NAME).exists():
        policy_path = data_dir / POLICY_FILE_NAME
    policy = load_policy(policy_path) if policy_path is not None else KarmaPolicy()
    trust = TrustStore(data_dir / TRUST_FILE_NAME)
    return ReaderInputs(
        policy=policy,
        trusted=trust.keys(network, "karma"),
        distrusted=trust.distrusted(network),
        high_water=KarmaState(data_dir / STATE_FILE_NAME).high_water(network, now=now),
    )
