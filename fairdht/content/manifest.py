"""The file list of a bundle: one canonical msgpack document, stored as a blob.

::

    {"version": 1, "files": [[path, executable, size, blob_id], ...]}

Files are in bytewise order of their UTF-8 paths (the code-hash order); paths are
relative POSIX paths that stay inside the bundle; ``blob_id`` names the file's
content blob (fairdht.content.blobs). A decoder re-encodes and compares, so one
list has one byte form, and no file path is also a directory of another.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fairdht.errors import BadBody, MalformedRecord, UsageError
from fairdht.records.canonical import canonical_pack, strict_unpack
from fairdht.referee.codehash import check_bundle_path

__all__ = [
    "MANIFEST_VERSION",
    "MAX_MANIFEST_FILES",
    "FileEntry",
    "decode_manifest",
    "encode_manifest",
]

MANIFEST_VERSION = 1
MAX_MANIFEST_FILES = 100_000
_MAX_FILE_BYTES = 2**40


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file of a bundle: where it goes, whether it is executable, its size and blob."""

    path: str
    executable: bool
    size: int
    blob_id: bytes


def _check_entries(entries: Sequence[FileEntry]) -> None:
    paths = [e.path for e in entries]
    if [p.encode() for p in paths] != sorted({p.encode() for p in paths}):
        raise BadBody("manifest files must be in bytewise path order without repeats")
    dirs = {p.rsplit("/", i)[0] for p in paths for i in range(1, p.count("/") + 1)}
    clash = dirs & set(paths)
    if clash:
        raise BadBody(f"manifest path {sorted(clash)[0]!r} is both a file and a directory")


def encode_manifest(entries: Sequence[FileEntry]) -> bytes:
    """The canonical bytes of a file list (entries must already be in path order)."""
    _check_entries(entries)
    return canonical_pack(
        {
            "version": MANIFEST_VERSION,
            "files": [[e.path, e.executable, e.size, e.blob_id] for e in entries],
        }
    )


def decode_manifest(data: bytes) -> list[FileEntry]:
    """Parse an untrusted file list; raise RecordError (BadBody, MalformedRecord) only."""
    doc = strict_unpack(data)
    if not isinstance(doc, dict) or set(doc) != {"version", "files"}:
        raise BadBody("manifest must be a map of version and files")
    if doc["version"] != MANIFEST_VERSION or isinstance(doc["version"], bool):
        raise BadBody(f"unsupported manifest version {doc['version']!r}")
    files = doc["files"]
    if not isinstance(files, list) or len(files) > MAX_MANIFEST_FILES:
        raise BadBody(f"manifest files must be a list of at most {MAX_MANIFEST_FILES}")
    entries: list[FileEntry] = []
    for item in files:
        if not isinstance(item, list) or len(item) != 4:
            raise BadBody("each manifest file is [path, executable, size, blob_id]")
        path, executable, size, blob_id = item
        if not isinstance(path, str) or len(path) > 4096:
            raise BadBody("manifest path must be a string")
        try:
            check_bundle_path(path)
        except UsageError as exc:
            raise BadBody(str(exc)) from None
        if not isinstance(executable, bool):
            raise BadBody("manifest executable flag must be true or false")
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= _MAX_FILE_BYTES:
            raise BadBody("manifest file size must be a non-negative integer")
        if not isinstance(blob_id, bytes) or len(blob_id) != 32:
            raise BadBody("manifest blob id must be 32 bytes")
        entries.append(FileEntry(path, executable, size, blob_id))
    _check_entries(entries)
    if encode_manifest(entries) != data:
        raise MalformedRecord("manifest is not in canonical form")
    return entries
