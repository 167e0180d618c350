"""The code hash of a game bundle: BLAKE2b-256 over its files, framed one by one.

Framing (docs/referee.md, "Code hash")::

    h = BLAKE2b-256()
    h.update(b"fairdht/codehash/v1\\x00")
    for each regular file, in bytewise order of its UTF-8 POSIX relative path:
        h.update(u64(len(path)) ‖ path ‖ exec ‖ u64(len(content)) ‖ content)

``u64`` is 8 bytes big-endian; ``exec`` is one byte, 1 when the owner may execute the
file and 0 otherwise. A directory bundle's paths are relative to it ("bin/game");
a single-file bundle is one file named by its base name. Empty directories add
nothing; symlinks, devices, sockets, FIFOs and names that are not UTF-8 are refused,
so the same tree hashes the same on any machine whatever order it was written in.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from fairdht.errors import UsageError

__all__ = [
    "CODE_HASH_BYTES",
    "CODE_HASH_DOMAIN",
    "BundleFile",
    "bundle_files",
    "check_bundle_path",
    "code_hash",
    "code_hash_of_files",
    "parse_code_hash",
]

CODE_HASH_BYTES = 32
CODE_HASH_DOMAIN = b"fairdht/codehash/v1\x00"
_READ_SIZE = 1 << 16
MAX_BUNDLE_FILES = 100_000


@dataclass(frozen=True, slots=True)
class BundleFile:
    """One regular file of a bundle: relative POSIX path, executable bit, absolute location."""

    path: str
    executable: bool
    location: Path
    size: int


def parse_code_hash(text: str) -> bytes:
    """Parse 64 hex digits into a 32-byte code hash; UsageError otherwise."""
    try:
        raw = bytes.fromhex(text.strip())
    except ValueError:
        raise UsageError(f"not a hex code hash: {text[:80]!r}") from None
    if len(raw) != CODE_HASH_BYTES:
        raise UsageError(f"a code hash is 64 hex digits, got {len(text.strip())}")
    return raw


def check_bundle_path(path: str) -> str:
    """Return ``path`` if it is a clean relative POSIX path inside a bundle; UsageError otherwise."""
    if not path or path.startswith("/") or "\\" in path or "\x00" in path:
        raise UsageError(f"bundle path {path[:80]!r} is not a relative POSIX path")
    for part in path.split("/"):
        if part in ("", ".", ".."):
            raise UsageError(f"bundle path {path[:80]!r} leaves the bundle or is not normalized")
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"bundle path {path[:80]!r} is not valid UTF-8") from None
    return path


def _file_entry(location: Path, rel: str, st: os.stat_result) -> BundleFile:
    if stat.S_ISLNK(st.st_mode):
        raise UsageError(f"{location} is a symlink; bundles hold regular files only")
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"{location} is not a regular file (device, socket or FIFO)")
    return BundleFile(
        path=check_bundle_path(rel),
        executable=bool(st.st_mode & stat.S_IXUSR),
        location=location,
        size=st.st_size,
    )


def _walk(root: Path, prefix: str) -> Iterator[BundleFile]:
    try:
        entries = list(os.scandir(root))
    except OSError as exc:
        raise UsageError(f"cannot read directory {root}: {exc.strerror}") from None
    for entry in entries:
        name = entry.name
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            raise UsageError(f"{root}: a file name is not valid UTF-8") from None
        rel = f"{prefix}{name}"
        st = entry.stat(follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            yield from _walk(Path(entry.path), rel + "/")
        else:
            yield _file_entry(Path(entry.path), rel, st)


def bundle_files(path: Path) -> list[BundleFile]:
    """List a bundle's regular files in code-hash order; UsageError for anything else."""
    path = Path(path)
    try:
        st = path.lstat()
    except FileNotFoundError:
        raise UsageError(f"{path} does not exist") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        files = list(_walk(path, ""))
    else:
        files = [_file_entry(path, path.name, st)]
    if len(files) > MAX_BUNDLE_FILES:
        raise UsageError(f"{path} holds more than {MAX_BUNDLE_FILES} files")
    # Bytewise order of UTF-8 paths, not locale or str order (docs/referee.md).
    files.sort(key=lambda f: f.path.encode("utf-8"))
    return files


def _frame_header(path: str, executable: bool, size: int) -> bytes:
    raw = path.encode("utf-8")
    return (
        len(raw).to_bytes(8, "big")
        + raw
        + (b"\x01" if executable else b"\x00")
        + size.to_bytes(8, "big")
    )


def code_hash_of_files(files: Iterable[tuple[str, bool, bytes]]) -> bytes:
    """The code hash of in-memory files (path, executable, content), in any order."""
    h = hashlib.blake2b(digest_size=CODE_HASH_BYTES)
    h.update(CODE_HASH_DOMAIN)
    seen: set[str] = set()
    for path, executable, content in sorted(files, key=lambda f: f[0].encode("utf-8")):
        check_bundle_path(path)
        if path in seen:
            raise UsageError(f"bundle path {path[:80]!r} appears twice")
        seen.add(path)
        h.update(_frame_header(path, executable, len(content)))
        h.update(content)
    return h.digest()


def code_hash(path: Path) -> bytes:
    """The 32-byte code hash of the bundle at ``path`` (a file or a directory)."""
    h = hashlib.blake2b(digest_size=CODE_HASH_BYTES)
    h.update(CODE_HASH_DOMAIN)
    for f in bundle_files(Path(path)):
        h.update(_frame_header(f.path, f.executable, f.size))
        # Stream the file; if its length no longer matches the header, it changed under
        # us and the hash would describe no real tree, so refuse.
        seen = 0
        try:
            with open(f.location, "rb") as fh:
                while block := fh.read(_READ_SIZE):
                    seen += len(block)
                    h.update(block)
        except OSError as exc:
            raise UsageError(f"cannot read {f.location}: {exc.strerror}") from None
        if seen != f.size:
            raise UsageError(f"{f.location} changed while it was being hashed")
    return h.digest()
