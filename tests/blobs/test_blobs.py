"""Content-addressed blobs: split, publish, fetch, and refusal of lies."""

from __future__ import annotations

import asyncio
import random

import pytest

from fairdht.content.blobs import (
    MAX_FANOUT,
    MAX_LEAF_PAYLOAD,
    blob_records,
    fetch_blob,
    publish_blob,
    split_blob,
)
from fairdht.errors import BadBody, NotFoundError, RecordTooLarge
from fairdht.identity import SigningKey
from fairdht.records import Record, sign_record
from fairdht.records.kinds.chunk import CHUNK_KIND, Chunk, chunk_hash

NOW = 1_700_000_000.0
KEY = SigningKey(bytes(range(32)))


class DictDHT:
    """A dict of DHT key -> records, standing in for DHTNode.get/put in unit tests."""

    def __init__(self) -> None:
        self.data: dict[bytes, list[Record]] = {}
        self.gets = 0

    async def put(self, record: Record) -> int:
        self.data.setdefault(record.key, []).append(record)
        return 1

    async def get(self, key: bytes) -> list[Record]:
        self.gets += 1
        return list(self.data.get(key, []))


def roundtrip(data: bytes) -> tuple[bytes, bytes, DictDHT]:
    dht = DictDHT()
    blob_id, records = blob_records(KEY, "demo", data, now=NOW)

    async def go() -> bytes:
        await publish_blob(dht.put, records, parallel=4)
        return await fetch_blob(dht.get, blob_id)

    return blob_id, asyncio.run(go()), dht


@pytest.mark.parametrize(
    "size",
    [0, 1, MAX_LEAF_PAYLOAD, MAX_LEAF_PAYLOAD + 1, MAX_LEAF_PAYLOAD * MAX_FANOUT + 5, 200_000],
)
def test_roundtrip_of_every_shape(size: int) -> None:
    data = random.Random(size).randbytes(size)
    blob_id, fetched, _ = roundtrip(data)
    assert fetched == data
    assert blob_id == split_blob(data)[0]


def test_blob_id_depends_on_every_byte() -> None:
    data = bytearray(random.Random(1).randbytes(50_000))
    first = split_blob(bytes(data))[0]
    data[40_000] ^= 1
    assert split_blob(bytes(data))[0] != first


def test_missing_chunk_is_not_found() -> None:
    data = random.Random(2).randbytes(5_000)
    dht = DictDHT()
    blob_id, records = blob_records(KEY, "demo", data, now=NOW)
    asyncio.run(publish_blob(dht.put, records[1:]))
    with pytest.raises(NotFoundError):
        asyncio.run(fetch_blob(dht.get, blob_id))


def test_a_chunk_with_other_data_under_the_key_is_ignored() -> None:
    # A hostile replica answers with a valid chunk of other data: it does not hash to
    # what the index asks for, so it is skipped and the honest copy is used.
    data = random.Random(3).randbytes(3_000)
    dht = DictDHT()
    blob_id, records = blob_records(KEY, "demo", data, now=NOW)
    asyncio.run(publish_blob(dht.put, records))
    evil = sign_record(
        SigningKey(bytes(32)),
        CHUNK_KIND,
        "demo",
        chunk_hash(b"\x00evil"),
        Chunk(b"\x00evil"),
        now=NOW,
    )
    for key in dht.data:
        dht.data[key].insert(0, evil)
    assert asyncio.run(fetch_blob(dht.get, blob_id)) == data


def test_size_limit_is_checked_before_fetching_leaves() -> None:
    data = random.Random(4).randbytes(100_000)
    dht = DictDHT()
    blob_id, records = blob_records(KEY, "demo", data, now=NOW)
    asyncio.run(publish_blob(dht.put, records))
    with pytest.raises(RecordTooLarge):
        asyncio.run(fetch_blob(dht.get, blob_id, max_bytes=10_000))
    # Only the root index was fetched before the refusal.
    assert dht.gets == 1


def test_lying_index_is_refused() -> None:
    # An index that claims a different total than its children carry.
    leaf = b"\x00" + b"x" * 10
    lie = b"\x01" + (11).to_bytes(8, "big") + chunk_hash(leaf)
    dht = DictDHT()
    for data in (leaf, lie):
        asyncio.run(
            dht.put(sign_record(KEY, CHUNK_KIND, "demo", chunk_hash(data), Chunk(data), now=NOW))
        )
    with pytest.raises(BadBody):
        asyncio.run(fetch_blob(dht.get, chunk_hash(lie)))


def test_blob_id_must_be_32_bytes() -> None:
    with pytest.raises(BadBody):
        asyncio.run(fetch_blob(DictDHT().get, b"short"))
