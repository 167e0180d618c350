"""Bundles as blobs plus a signed manifest: round trip, trust, tampering (in memory)."""

from __future__ import annotations

import asyncio
import dataclasses
import stat
from pathlib import Path

import pytest
from content_fakes import RecordMap

from fairdht.content.blobs import blob_records
from fairdht.content.bundle import (
    BundleFileData,
    fetch_bundle,
    mirror_plan,
    plan_publish,
    publish_plan,
    read_bundle,
    write_bundle,
)
from fairdht.content.manifest import FileEntry, decode_manifest, encode_manifest
from fairdht.errors import BadBody, MalformedRecord, NotFoundError, UsageError
from fairdht.identity.keys import SigningKey
from fairdht.records.canonical import canonical_pack
from fairdht.records.envelope import Record, sign_record
from fairdht.records.kinds.chunk import Chunk
from fairdht.records.kinds.content import BUNDLE_KIND, BundleManifest, bundle_key
from fairdht.referee.codehash import code_hash

NET = "demo"
NOW = 1_800_000_000.0
PUBLISHER = SigningKey(bytes(range(32)))
STRANGER = SigningKey(bytes(range(1, 33)))


def make_bundle(root: Path) -> Path:
    (root / "rules").mkdir(parents=True)
    (root / "rules" / "arena.py").write_bytes(b"SPEED = 5\n" * 300)  # several chunks
    (root / "run.sh").write_bytes(b"#!/bin/sh\nexec python3 rules/arena.py\n")
    (root / "run.sh").chmod(0o755)
    (root / "empty.dat").write_bytes(b"")
    return root


def publish(root: Path, key: SigningKey = PUBLISHER) -> tuple[RecordMap, bytes]:
    net = RecordMap()
    plan = plan_publish(key, NET, read_bundle(root), now=NOW)
    asyncio.run(publish_plan(net.put, plan))
    return net, plan.code_hash


def test_publish_fetch_write_round_trip(tmp_path: Path) -> None:
    root = make_bundle(tmp_path / "src")
    net, digest = publish(root)
    assert digest == code_hash(root)
    fetched = asyncio.run(fetch_bundle(net.get, NET, digest, trusted={PUBLISHER.public_key.raw}))
    assert fetched.manifest.author == PUBLISHER.public_key.raw
    out = tmp_path / "out"
    write_bundle(fetched, out)
    assert code_hash(out) == digest
    assert (out / "run.sh").stat().st_mode & stat.S_IXUSR
    assert (out / "rules" / "arena.py").read_bytes() == b"SPEED = 5\n" * 300
    with pytest.raises(UsageError, match="not an empty directory"):
        write_bundle(fetched, out)


def test_untrusted_signer_is_refused(tmp_path: Path) -> None:
    net, digest = publish(make_bundle(tmp_path / "src"), key=STRANGER)
    with pytest.raises(NotFoundError, match="outside the content trust role"):
        asyncio.run(fetch_bundle(net.get, NET, digest, trusted={PUBLISHER.public_key.raw}))
    with pytest.raises(NotFoundError, match="no manifest"):
        asyncio.run(fetch_bundle(net.get, NET, bytes(32), trusted={STRANGER.public_key.raw}))


def test_trusted_manifest_naming_other_files_is_refused(tmp_path: Path) -> None:
    # A trusted key signs a manifest under the code hash of the honest bundle, but the
    # file list it names holds a modified file: the rebuilt code hash gives it away.
    honest = make_bundle(tmp_path / "src")
    net, digest = publish(honest)
    files = read_bundle(honest)
    evil = [
        BundleFileData(
            f.path, f.executable, b"SPEED = 99\n" if f.path == "rules/arena.py" else f.content
        )
        for f in files
    ]
    evil_plan = plan_publish(STRANGER, NET, evil, now=NOW)
    asyncio.run(publish_plan(net.put, evil_plan))
    forged = sign_record(STRANGER, BUNDLE_KIND, NET, digest, evil_plan.manifest.body, now=NOW)
    asyncio.run(net.put(forged))
    only_stranger = {STRANGER.public_key.raw}
    with pytest.raises(BadBody, match="rebuilt code hash"):
        asyncio.run(fetch_bundle(net.get, NET, digest, trusted=only_stranger))
    # With both trusted, the honest manifest still verifies.
    both = {STRANGER.public_key.raw, PUBLISHER.public_key.raw}
    fetched = asyncio.run(fetch_bundle(net.get, NET, digest, trusted=both))
    assert fetched.manifest.author == PUBLISHER.public_key.raw


def test_missing_chunk_is_refused(tmp_path: Path) -> None:
    net, digest = publish(make_bundle(tmp_path / "src"))
    arena_chunks = [k for k, slots in net.data.items() if k != bundle_key(NET, digest)]
    del net.data[arena_chunks[0]]
    with pytest.raises(NotFoundError, match="chunk"):
        asyncio.run(fetch_bundle(net.get, NET, digest, trusted={PUBLISHER.public_key.raw}))


def test_mirror_keeps_the_original_manifest(tmp_path: Path) -> None:
    net, digest = publish(make_bundle(tmp_path / "src"))
    fetched = asyncio.run(fetch_bundle(net.get, NET, digest, trusted={PUBLISHER.public_key.raw}))
    mirror = RecordMap()
    plan = mirror_plan(STRANGER, NET, fetched, now=NOW + 5)
    asyncio.run(publish_plan(mirror.put, plan))
    again = asyncio.run(fetch_bundle(mirror.get, NET, digest, trusted={PUBLISHER.public_key.raw}))
    assert again.manifest == fetched.manifest
    assert again.files == fetched.files


def test_manifest_decoder_refuses_bad_lists() -> None:
    blob = bytes(32)
    good = [FileEntry("a", False, 1, blob), FileEntry("b/c", True, 2, blob)]
    assert decode_manifest(encode_manifest(good)) == good
    bad_docs = [
        {"version": 1, "files": [["../x", False, 1, blob]]},
        {"version": 1, "files": [["b", False, 1, blob], ["a", False, 1, blob]]},
        {"version": 1, "files": [["a", False, 1, blob], ["a/b", False, 1, blob]]},
        {"version": 2, "files": []},
        {"version": 1, "files": [["a", 1, 1, blob]]},
        {"version": 1, "files": [["a", False, -1, blob]]},
        {"version": 1, "files": [["a", False, 1, b"short"]]},
        [],
    ]
    for doc in bad_docs:
        with pytest.raises((BadBody, MalformedRecord)):
            decode_manifest(canonical_pack(doc))
    with pytest.raises(MalformedRecord):
        decode_manifest(b"\xc1")


def test_manifest_counts_must_match(tmp_path: Path) -> None:
    root = make_bundle(tmp_path / "src")
    net, digest = publish(root)
    held = next(iter(net.data[bundle_key(NET, digest)].values()))
    body = held.body_as(BundleManifest)
    liar = sign_record(
        PUBLISHER,
        BUNDLE_KIND,
        NET,
        digest,
        BundleManifest(body.manifest, body.files, body.size + 1),
        now=NOW + 1,
    )
    asyncio.run(net.put(liar))
    with pytest.raises(BadBody, match="signed counts"):
        asyncio.run(fetch_bundle(net.get, NET, digest, trusted={PUBLISHER.public_key.raw}))


def test_blob_records_are_signed_by_the_publisher(tmp_path: Path) -> None:
    _, records = blob_records(PUBLISHER, NET, b"x" * 2000, now=NOW)
    assert all(r.author == PUBLISHER.public_key.raw for r in records)


def test_forged_chunk_from_a_replica_is_refused(tmp_path: Path) -> None:
    # A replica answers with a chunk whose data was changed after signing (what a
    # hostile peer would send if nothing checked it): the hash check refuses it.
    net, digest = publish(make_bundle(tmp_path / "src"))
    trusted = {PUBLISHER.public_key.raw}

    async def hostile_get(key: bytes) -> list[Record]:
        out = []
        for r in await net.get(key):
            if isinstance(r.body, Chunk) and b"SPEED = 5" in r.body.data:
                r = dataclasses.replace(r, body=Chunk(r.body.data.replace(b"5", b"9")))
            out.append(r)
        return out

    with pytest.raises(NotFoundError, match="chunk"):
        asyncio.run(fetch_bundle(hostile_get, NET, digest, trusted=trusted))
