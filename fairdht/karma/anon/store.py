"""``DATA_DIR/anon-votes.sqlite``: the player's tokens held until their votes may be cast.

Holds secrets (each row's one-time key seed), so the file is created owner-only (0600).
A row leaves the store when its vote is cast or its key proved moved (it would not count).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from fairdht.karma.anon.ballot import HeldVote

__all__ = ["HeldVoteStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS held (
    token BLOB PRIMARY KEY, network TEXT NOT NULL, referee BLOB NOT NULL,
    period INTEGER NOT NULL, subject BLOB NOT NULL, action TEXT NOT NULL,
    key_n BLOB NOT NULL, seed BLOB NOT NULL
)
"""


class HeldVoteStore:
    """Held votes in one SQLite file (WAL), one row per token."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        self._db = sqlite3.connect(path)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)
        self._db.commit()

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> HeldVoteStore:
        """The store of ``data_dir``."""
        return cls(data_dir / "anon-votes.sqlite")

    def add(self, held: HeldVote) -> None:
        """Keep ``held`` until it is cast."""
        with self._db:
            self._db.execute(
                "INSERT OR IGNORE INTO held VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    held.token,
                    held.network,
                    held.referee,
                    held.period,
                    held.subject,
                    held.action,
                    held.key_n,
                    held.seed,
                ),
            )

    def all(self) -> list[HeldVote]:
        """Every held vote, oldest period first."""
        rows = self._db.execute(
            "SELECT network, referee, period, subject, action, key_n, token, seed FROM held"
            " ORDER BY period, token"
        ).fetchall()
        return [HeldVote(*row) for row in rows]

    def remove(self, held: HeldVote) -> None:
        """Forget ``held`` (cast, or no longer castable)."""
        with self._db:
            self._db.execute("DELETE FROM held WHERE token = ?", (held.token,))

    def close(self) -> None:
        """Close the file."""
        self._db.close()
