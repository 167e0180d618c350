"""The layout of a node's data dir and the small files in it (key, token, node.json).

::

    <data-dir>/            mode 0700
        node.key           Ed25519 seed, 0600, created on first run
        api-token          bearer token of the HTTP API's writing routes, 0600
        records.sqlite     the record store (SQLite, WAL)
        peers.json         contacts saved to rejoin when every entry node is down
        node.json          where the running node listens (pid, udp, http)
        node.lock          held (flock) by the one node running on this data dir
        trust.sqlite       keys the owner trusts per network and role (fairdht trust)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fairdht.errors import KeyFileError, UsageError

__all__ = ["DataDir", "atomic_write", "load_or_create_token", "lock_data_dir", "read_json_file"]

_TOKEN_BYTES = 32


@dataclass(frozen=True, slots=True)
class DataDir:
    """Paths of the files a node keeps in its data dir."""

    root: Path

    @property
    def key(self) -> Path:
        """The node's key file."""
        return self.root / "node.key"

    @property
    def api_token(self) -> Path:
        """The HTTP API bearer token."""
        return self.root / "api-token"

    @property
    def records(self) -> Path:
        """The SQLite record store."""
        return self.root / "records.sqlite"

    @property
    def peers(self) -> Path:
        """Saved contacts (JSON)."""
        return self.root / "peers.json"

    @property
    def trust(self) -> Path:
        """The trust store (SQLite): keys trusted per network and role."""
        return self.root / "trust.sqlite"

    @property
    def lock(self) -> Path:
        """The lock a running node holds (its pid inside)."""
        return self.root / "node.lock"

    @property
    def node_info(self) -> Path:
        """Where the running node listens (JSON)."""
        return self.root / "node.json"

    def create(self) -> None:
        """Create the directory (0700: it holds the key and the token)."""
        try:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create data dir {self.root}: {exc.strerror}") from None
        if not self.root.is_dir():
            raise UsageError(f"data dir {self.root} is not a directory")


@contextlib.contextmanager
def lock_data_dir(data_dir: DataDir) -> Iterator[None]:
    """Hold the data dir's lock while a node runs; UsageError naming the holder's pid.

    Two nodes on one data dir would share an id and SQLite files, and the one that
    stops first would delete the other's node.json. flock(2) is released by the kernel
    when its holder dies, so a kill -9 leaves no stale lock. Readers (``history``,
    ``servers --data-dir``) take no lock and keep working while the node runs.
    """
    data_dir.create()
    fd = os.open(data_dir.lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
            raise UsageError(
                f"data dir {data_dir.root} is in use by another fairdht node (pid {holder}); "
                "stop it or give this one its own --data-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        yield
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync it, then rename over it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_json_file(path: Path) -> Any:
    """Parse a JSON file; None if it is missing, unreadable or not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def load_or_create_token(path: Path) -> str:
    """Return the API token at ``path``, creating a random one (0600) on first run.

    The token is a secret like the key file: a token readable by group or others is
    refused the same way.
    """
    if not path.exists():
        atomic_write(path, (secrets.token_hex(_TOKEN_BYTES) + "\n").encode(), mode=0o600)
    st = path.stat()
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"API token {path} is accessible by group or others "
            f"(mode {stat.S_IMODE(st.st_mode):o}); run: chmod 600 {path}"
        )
    token = path.read_text(encoding="ascii", errors="replace").strip()
    if len(token) < 16 or not token.isascii() or not token.isprintable():
        raise KeyFileError(f"API token {path} is malformed; delete it to create a new one")
    return token
