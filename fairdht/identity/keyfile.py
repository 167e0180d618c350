"""Key files: one Ed25519 seed per file, created 0600, refused when others can read it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from fairdht.errors import KeyFileError
from fairdht.identity.keys import SigningKey

__all__ = ["default_data_dir", "load_key", "load_or_create_key", "write_key"]

_HEADER = "fairdht-ed25519-seed v1"


def default_data_dir() -> Path:
    """The user's data dir: ``$XDG_DATA_HOME/fairdht`` or ``~/.local/share/fairdht``."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "fairdht"


def write_key(path: Path, key: SigningKey, *, overwrite: bool = False) -> None:
    """Write ``key`` to ``path`` with mode 0600, atomically; refuse to overwrite."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise KeyFileError(f"{path} already exists; refusing to overwrite a key file")
    # A new directory for a key is private, like a data dir (README, "The data dir").
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, f"{_HEADER}\n{key.seed.hex()}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def load_key(path: Path) -> SigningKey:
    """Read a key file; refuse files readable or writable by group or others."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise KeyFileError(
            f"key file {path} does not exist; create one with: fairdht keygen --out {path}"
        ) from None
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"key file {path} is accessible by group or others "
            f"(mode {stat.S_IMODE(st.st_mode):o}); run: chmod 600 {path}"
        )
    try:
        lines = path.read_text(encoding="ascii").split()
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc}") from None
    if len(lines) != 3 or " ".join(lines[:2]) != _HEADER:
        raise KeyFileError(f"{path} is not a fairdht key file")
    try:
        seed = bytes.fromhex(lines[2])
    except ValueError:
        raise KeyFileError(f"{path} is not a fairdht key file (bad hex)") from None
    if len(seed) != 32:
        raise KeyFileError(f"{path} is not a fairdht key file (seed is not 32 bytes)")
    return SigningKey(seed)


def load_or_create_key(path: Path) -> SigningKey:
    """Load the key at ``path``, creating a new one (0600) on first run."""
    path = Path(path)
    if not path.exists():
        write_key(path, SigningKey.generate())
    return load_key(path)
