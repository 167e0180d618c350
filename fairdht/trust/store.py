"""The node's trust store: which keys it trusts per network and role, in SQLite.

Roles (DESIGN.md, "Identity and trust"): ``checkpoint`` (maintainer keys that sign
checkpoints and rollbacks, with a threshold K), ``content`` (keys whose bundles the
node runs) and ``karma`` (raters it trusts). The shipped defaults
(``default_keys.json``) count as trusted until the user removes them; a TUF-style
rotation (``rotate``) replaces a role's whole set and records its version.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from pathlib import Path

from fairdht.errors import BadBody, UsageError
from fairdht.records.envelope import check_network_name
from fairdht.trust.defaults import DefaultSet, load_defaults

__all__ = ["MAX_THRESHOLD", "ROLES", "TrustStore"]

ROLES = frozenset({"checkpoint", "content", "karma"})
MAX_THRESHOLD = 255

_SCHEMA = """
CREATE TABLE IF NOT EXISTS trusted (
    network TEXT NOT NULL, role TEXT NOT NULL, key BLOB NOT NULL,
    trusted INTEGER NOT NULL,            -- 1 added by the user, 0 removed (hides a default)
    PRIMARY KEY (network, role, key));
CREATE TABLE IF NOT EXISTS thresholds (
    network TEXT NOT NULL, role TEXT NOT NULL, k INTEGER NOT NULL,
    PRIMARY KEY (network, role));
CREATE TABLE IF NOT EXISTS distrusted (
    network TEXT NOT NULL, key BLOB NOT NULL, PRIMARY KEY (network, key));
CREATE TABLE IF NOT EXISTS keyset_versions (
    network TEXT NOT NULL, role TEXT NOT NULL, version INTEGER NOT NULL,
    PRIMARY KEY (network, role));
"""


def _check(network: str, role: str | None = None, key: bytes | None = None) -> None:
    try:
        check_network_name(network)
    except BadBody as exc:
        raise UsageError(str(exc)) from None
    if role is not None and role not in ROLES:
        raise UsageError(f"unknown trust role {role!r}; roles are {', '.join(sorted(ROLES))}")
    if key is not None and (not isinstance(key, bytes) or len(key) != 32):
        raise UsageError("a trusted key is a 32-byte Ed25519 public key")


class TrustStore:
    """Trusted keys and thresholds per (network, role), kept in ``path`` (trust.sqlite).

    Each call opens and closes its own connection, so a CLI command and a running node
    can share the file (WAL) and nothing is left open.
    """

    def __init__(
        self, path: Path, *, defaults: Mapping[tuple[str, str], DefaultSet] | None = None
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._defaults = dict(load_defaults() if defaults is None else defaults)
        with self._db() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=10.0)) as db, db:
            yield db

    def add(self, network: str, role: str, key: bytes) -> None:
        """Trust ``key`` for ``role`` on ``network``."""
        _check(network, role, key)
        with self._db() as db:
            db.execute("INSERT OR REPLACE INTO trusted VALUES (?, ?, ?, 1)", (network, role, key))

    def remove(self, network: str, role: str, key: bytes) -> None:
        """Stop trusting ``key`` for ``role`` on ``network`` (a shipped default too)."""
        _check(network, role, key)
        with self._db() as db:
            db.execute("INSERT OR REPLACE INTO trusted VALUES (?, ?, ?, 0)", (network, role, key))

    def keys(self, network: str, role: str) -> frozenset[bytes]:
        """The trusted keys: shipped defaults plus added keys, minus removed ones."""
        _check(network, role)
        default = self._defaults.get((network, role))
        out = set(default.keys) if default else set()
        with self._db() as db:
            rows = db.execute(
                "SELECT key, trusted FROM trusted WHERE network = ? AND role = ?", (network, role)
            ).fetchall()
        for key, trusted in rows:
            if trusted:
                out.add(bytes(key))
            else:
                out.discard(bytes(key))
        return frozenset(out)

    def threshold(self, network: str, role: str) -> int:
        """K: how many distinct trusted keys must agree (the shipped value, else 1)."""
        _check(network, role)
        with self._db() as db:
            row = db.execute(
                "SELECT k FROM thresholds WHERE network = ? AND role = ?", (network, role)
            ).fetchone()
        if row is not None:
            return int(row[0])
        default = self._defaults.get((network, role))
        return default.threshold if default else 1

    def set_threshold(self, network: str, role: str, k: int) -> None:
        """Set K for (network, role); K is 1..255."""
        _check(network, role)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_THRESHOLD:
            raise UsageError(f"a threshold is an integer from 1 to {MAX_THRESHOLD}")
        with self._db() as db:
            db.execute("INSERT OR REPLACE INTO thresholds VALUES (?, ?, ?)", (network, role, k))

    def distrust(self, network: str, key: bytes) -> None:
        """Mark ``key`` as distrusted on ``network`` (e.g. after blame shows it flooding)."""
        _check(network, None, key)
        with self._db() as db:
            db.execute("INSERT OR REPLACE INTO distrusted VALUES (?, ?)", (network, key))

    def distrusted(self, network: str) -> frozenset[bytes]:
        """Keys marked as distrusted on ``network``."""
        _check(network)
        with self._db() as db:
            rows = db.execute("SELECT key FROM distrusted WHERE network = ?", (network,))
            return frozenset(bytes(r[0]) for r in rows.fetchall())

    def networks(self) -> list[str]:
        """Networks that have any shipped or local trust entry, sorted."""
        names = {network for network, _ in self._defaults}
        with self._db() as db:
            for table in ("trusted", "thresholds", "distrusted"):
                names.update(r[0] for r in db.execute(f"SELECT DISTINCT network FROM {table}"))
        return sorted(names)

    def keyset_version(self, network: str, role: str) -> int:
        """Version of the last rotation applied to (network, role); 0 for none."""
        _check(network, role)
        with self._db() as db:
            row = db.execute(
                "SELECT version FROM keyset_versions WHERE network = ? AND role = ?",
                (network, role),
            ).fetchone()
        return int(row[0]) if row else 0

    def rotate(
        self, network: str, role: str, keys: frozenset[bytes], k: int, *, version: int
    ) -> None:
        """Replace the whole key set of (network, role) with ``keys`` and threshold ``k``.

        The caller has verified the rotation (``fairdht.trust.rotation``); this only
        refuses a version that is not newer than the one held (TUF rollback protection).
        """
        _check(network, role)
        for key in keys:
            _check(network, role, key)
        if not keys or not 1 <= k <= len(keys):
            raise UsageError("a rotated key set needs at least K keys")
        if version <= self.keyset_version(network, role):
            raise UsageError(f"key set version {version} is not newer than the one held")
        old = self.keys(network, role)
        with self._db() as db:
            for key in old - keys:
                db.execute(
                    "INSERT OR REPLACE INTO trusted VALUES (?, ?, ?, 0)", (network, role, key)
                )
            for key in keys:
                db.execute(
                    "INSERT OR REPLACE INTO trusted VALUES (?, ?, ?, 1)", (network, role, key)
                )
            db.execute("INSERT OR REPLACE INTO thresholds VALUES (?, ?, ?)", (network, role, k))
            db.execute(
                "INSERT OR REPLACE INTO keyset_versions VALUES (?, ?, ?)", (network, role, version)
            )
