"""Publish and fetch signed bundles: files as blobs, a signed manifest whose id is the code hash.

Publishing signs every file's chunks, the file list's chunks and one ``bundle``
record (subkey = code hash) naming the file list. Fetching reads the manifests under
the code hash, keeps those signed by a key the caller trusts (the node's ``content``
trust role), fetches every blob (each chunk checked against its hash by
fairdht.content.blobs), rebuilds the code hash from the files and refuses the bundle
unless it equals the one asked for. ``get`` and ``put`` are normally DHTNode's.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from fairdht.content.blobs import blob_records, fetch_blob, publish_blob
from fairdht.content.manifest import FileEntry, decode_manifest, encode_manifest
from fairdht.errors import BadBody, NotFoundError, RecordError, RecordTooLarge, UsageError
from fairdht.identity.keys import SigningKey
from fairdht.records.envelope import Record, sign_record
from fairdht.records.kinds.content import BUNDLE_KIND, BundleManifest, bundle_key
from fairdht.referee.codehash import bundle_files, code_hash_of_files

__all__ = [
    "DEFAULT_MAX_BUNDLE_BYTES",
    "BundleFileData",
    "FetchedBundle",
    "PublishPlan",
    "fetch_bundle",
    "mirror_plan",
    "plan_publish",
    "publish_plan",
    "read_bundle",
    "write_bundle",
]

DEFAULT_MAX_BUNDLE_BYTES = 64 * 2**20
_PARALLEL_FILES = 4

Get = Callable[[bytes], Awaitable[list[Record]]]
Put = Callable[[Record], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class BundleFileData:
    """One file of a bundle in memory."""

    path: str
    executable: bool
    content: bytes


@dataclass(frozen=True, slots=True)
class PublishPlan:
    """Everything to put for one bundle: chunk records first, then the manifest record."""

    code_hash: bytes
    manifest: Record
    chunks: tuple[Record, ...]


@dataclass(frozen=True, slots=True)
class FetchedBundle:
    """A fetched and verified bundle: its code hash, the manifest record trusted, the files."""

    code_hash: bytes
    manifest: Record
    files: tuple[BundleFileData, ...]

    @property
    def size(self) -> int:
        """Total bytes of the files."""
        return sum(len(f.content) for f in self.files)


def read_bundle(path: Path, *, max_bytes: int = DEFAULT_MAX_BUNDLE_BYTES) -> list[BundleFileData]:
    """Read a bundle's files from disk (code-hash order); UsageError if too big or unreadable."""
    out: list[BundleFileData] = []
    total = 0
    for f in bundle_files(Path(path)):
        total += f.size
        if total > max_bytes:
            raise UsageError(f"{path} is larger than {max_bytes} bytes")
        try:
            content = f.location.read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read {f.location}: {exc.strerror}") from None
        out.append(BundleFileData(f.path, f.executable, content))
    return out


def plan_publish(
    key: SigningKey,
    network: str,
    files: Sequence[BundleFileData],
    *,
    now: float,
    ttl: int | None = None,
) -> PublishPlan:
    """Sign the chunk records and the manifest record of a bundle."""
    chunks: dict[bytes, Record] = {}
    entries: list[FileEntry] = []
    for f in sorted(files, key=lambda f: f.path.encode()):
        blob_id, records = blob_records(key, network, f.content, now=now, ttl=ttl)
        for r in records:
            chunks.setdefault(r.subkey, r)
        entries.append(FileEntry(f.path, f.executable, len(f.content), blob_id))
    manifest_id, records = blob_records(key, network, encode_manifest(entries), now=now, ttl=ttl)
    for r in records:
        chunks.setdefault(r.subkey, r)
    digest = code_hash_of_files((f.path, f.executable, f.content) for f in files)
    body = BundleManifest(
        manifest=manifest_id, files=len(entries), size=sum(e.size for e in entries)
    )
    manifest = sign_record(key, BUNDLE_KIND, network, digest, body, now=now, ttl=ttl)
    return PublishPlan(code_hash=digest, manifest=manifest, chunks=tuple(chunks.values()))


def mirror_plan(
    key: SigningKey, network: str, bundle: FetchedBundle, *, now: float, ttl: int | None = None
) -> PublishPlan:
    """Re-sign a fetched bundle's chunks with ``key``, keeping the original signed manifest.

    Chunks are trusted by hash, so the mirror's signature on them is only a carrier;
    the manifest stays the original signer's, which is what fetchers trust.
    """
    plan = plan_publish(key, network, bundle.files, now=now, ttl=ttl)
    if plan.code_hash != bundle.code_hash:
        raise BadBody("mirrored files do not rebuild the code hash")
    return PublishPlan(code_hash=bundle.code_hash, manifest=bundle.manifest, chunks=plan.chunks)


async def publish_plan(put: Put, plan: PublishPlan, *, parallel: int = 8) -> None:
    """Put every chunk, then the manifest, so a manifest never names missing chunks."""
    await publish_blob(put, plan.chunks, parallel=parallel)
    await put(plan.manifest)


async def _fetch_files(
    get: Get, entries: Sequence[FileEntry], *, max_bytes: int
) -> list[BundleFileData]:
    gate = asyncio.Semaphore(_PARALLEL_FILES)

    async def one(entry: FileEntry) -> BundleFileData:
        async with gate:
            data = await fetch_blob(get, entry.blob_id, max_bytes=max(entry.size, 1))
        if len(data) != entry.size:
            raise BadBody(f"file {entry.path!r} is {len(data)} bytes, manifest says {entry.size}")
        return BundleFileData(entry.path, entry.executable, data)

    if sum(e.size for e in entries) > max_bytes:
        raise RecordTooLarge(f"bundle is larger than {max_bytes} bytes")
    return list(await asyncio.gather(*(one(e) for e in entries)))


async def _fetch_one(
    get: Get, code_hash: bytes, manifest: Record, *, max_bytes: int
) -> FetchedBundle:
    body = manifest.body_as(BundleManifest)
    if body.size > max_bytes:
        raise RecordTooLarge(f"bundle is {body.size} bytes, limit {max_bytes}")
    entries = decode_manifest(await fetch_blob(get, body.manifest, max_bytes=max_bytes))
    if len(entries) != body.files or sum(e.size for e in entries) != body.size:
        raise BadBody("manifest file list does not match its signed counts")
    files = await _fetch_files(get, entries, max_bytes=max_bytes)
    rebuilt = code_hash_of_files((f.path, f.executable, f.content) for f in files)
    if rebuilt != code_hash:
        raise BadBody(
            f"rebuilt code hash {rebuilt.hex()} differs from the requested {code_hash.hex()}"
        )
    return FetchedBundle(code_hash=code_hash, manifest=manifest, files=tuple(files))


async def fetch_bundle(
    get: Get,
    network: str,
    code_hash: bytes,
    *,
    trusted: Collection[bytes],
    max_bytes: int = DEFAULT_MAX_BUNDLE_BYTES,
) -> FetchedBundle:
    """Fetch the bundle ``code_hash``, signed by one of ``trusted``, and verify every byte.

    Raises NotFoundError when no manifest exists or none is signed by a trusted key,
    and the last RecordError when every trusted manifest failed verification.
    """
    records = await get(bundle_key(network, code_hash))
    manifests = [
        r for r in records if r.kind == BUNDLE_KIND and not r.withdrawn and r.subkey == code_hash
    ]
    if not manifests:
        raise NotFoundError(f"no manifest of bundle {code_hash.hex()} was found")
    trusted_set = frozenset(trusted)
    usable = sorted(
        (r for r in manifests if r.author in trusted_set), key=lambda r: r.seq, reverse=True
    )
    if not usable:
        signers = ", ".join(sorted(r.author.hex()[:16] for r in manifests))
        raise NotFoundError(
            f"bundle {code_hash.hex()[:16]}… is signed only by keys outside the content "
            f"trust role ({signers}); refusing it"
        )
    failure: RecordError | NotFoundError | None = None
    for manifest in usable:
        try:
            return await _fetch_one(get, code_hash, manifest, max_bytes=max_bytes)
        except (RecordError, NotFoundError) as exc:
            failure = exc
    assert failure is not None
    raise failure


def write_bundle(bundle: FetchedBundle, out: Path) -> None:
    """Write a fetched bundle's files under ``out`` (created; must be empty if it exists)."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"{out} exists and is not an empty directory")
    out.mkdir(parents=True, exist_ok=True)
    for f in bundle.files:
        # Paths were checked (relative, no "..", no empty parts) when the manifest was
        # decoded, and out is fresh, so nothing can be written outside it.
        target = out.joinpath(*f.path.split("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o755 if f.executable else 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(f.content)
        os.chmod(target, 0o755 if f.executable else 0o644)
