"""Content-addressed blobs: bytes split into ``chunk`` records under a Merkle tree.

A leaf chunk's data is ``0x00 ‖ payload`` (payload ≤ 759 bytes). An index chunk's
data is ``0x01 ‖ u64 total length ‖ child hash × n`` with n ≤ 23. The blob id is the
BLAKE2b-256 of the root chunk's data; everything below it is reached by hash, so a
reader that starts from a trusted blob id cannot be handed different bytes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from fairdht.errors import BadBody, NotFoundError, RecordTooLarge
from fairdht.identity.keys import SigningKey
from fairdht.records.envelope import Record, sign_record
from fairdht.records.kinds.chunk import CHUNK_KIND, MAX_CHUNK_DATA, Chunk, chunk_hash, chunk_key

__all__ = [
    "BLOB_ID_BYTES",
    "MAX_FANOUT",
    "MAX_LEAF_PAYLOAD",
    "blob_records",
    "fetch_blob",
    "publish_blob",
    "split_blob",
]

BLOB_ID_BYTES = 32
_LEAF = 0x00
_INDEX = 0x01
MAX_LEAF_PAYLOAD = MAX_CHUNK_DATA - 1
MAX_FANOUT = (MAX_CHUNK_DATA - 9) // 32
_MAX_DEPTH = 8


def _index_chunk(total: int, children: Sequence[bytes]) -> bytes:
    return bytes([_INDEX]) + total.to_bytes(8, "big") + b"".join(children)


def split_blob(data: bytes) -> tuple[bytes, list[bytes]]:
    """Split ``data`` into chunk payloads; return (blob id, every chunk's data)."""
    leaves = [
        bytes([_LEAF]) + data[i : i + MAX_LEAF_PAYLOAD]
        for i in range(0, max(len(data), 1), MAX_LEAF_PAYLOAD)
    ]
    chunks = list(leaves)
    level = [(chunk_hash(c), len(c) - 1) for c in leaves]
    while len(level) > 1:
        nxt: list[tuple[bytes, int]] = []
        for i in range(0, len(level), MAX_FANOUT):
            group = level[i : i + MAX_FANOUT]
            total = sum(size for _, size in group)
            node = _index_chunk(total, [h for h, _ in group])
            chunks.append(node)
            nxt.append((chunk_hash(node), total))
        level = nxt
    return level[0][0], chunks


def blob_records(
    key: SigningKey, network: str, data: bytes, *, now: float, ttl: int | None = None
) -> tuple[bytes, list[Record]]:
    """Sign every chunk of ``data``; return (blob id, chunk records)."""
    blob_id, chunks = split_blob(data)
    records = [
        sign_record(key, CHUNK_KIND, network, chunk_hash(c), Chunk(c), now=now, ttl=ttl)
        for c in chunks
    ]
    return blob_id, records


async def publish_blob(
    put: Callable[[Record], Awaitable[object]],
    records: Sequence[Record],
    *,
    parallel: int = 8,
) -> None:
    """Put every chunk record with at most ``parallel`` puts in flight."""
    gate = asyncio.Semaphore(parallel)

    async def one(record: Record) -> None:
        async with gate:
            await put(record)

    await asyncio.gather(*(one(r) for r in records))


async def _fetch_chunk(get: Callable[[bytes], Awaitable[list[Record]]], digest: bytes) -> bytes:
    for record in await get(chunk_key(digest)):
        # Any signer's copy will do: the hash, not the author, makes a chunk right.
        if record.kind == CHUNK_KIND and isinstance(record.body, Chunk):
            data = record.body.data
            if chunk_hash(data) == digest:
                return data
    raise NotFoundError(f"chunk {digest.hex()[:16]}… was not found on the network")


async def fetch_blob(
    get: Callable[[bytes], Awaitable[list[Record]]],
    blob_id: bytes,
    *,
    max_bytes: int = 16 * 2**20,
    parallel: int = 8,
) -> bytes:
    """Fetch and verify the blob ``blob_id``; refuse trees that lie about their size."""
    if len(blob_id) != BLOB_ID_BYTES:
        raise BadBody("a blob id is 32 bytes")
    gate = asyncio.Semaphore(parallel)

    async def fetch(digest: bytes) -> bytes:
        async with gate:
            return await _fetch_chunk(get, digest)

    # Walk level by level: each entry is (hash, bytes it must cover or None for the root).
    level: list[tuple[bytes, int | None]] = [(blob_id, None)]
    for _ in range(_MAX_DEPTH + 1):
        datas = await asyncio.gather(*(fetch(h) for h, _ in level))
        if all(d[:1] == bytes([_LEAF]) for d in datas):
            out = bytearray()
            for (_, expected), d in zip(level, datas, strict=True):
                if expected is not None and len(d) - 1 != expected:
                    raise BadBody("blob leaf size does not match its index")
                out += d[1:]
            return bytes(out)
        nxt: list[tuple[bytes, int | None]] = []
        for (_, expected), d in zip(level, datas, strict=True):
            if d[:1] != bytes([_INDEX]) or len(d) < 9 + 32 or (len(d) - 9) % 32:
                raise BadBody("blob tree mixes leaves and indexes at one depth")
            total = int.from_bytes(d[1:9], "big")
            if expected is not None and total != expected:
                raise BadBody("blob index size does not match its parent")
            if total > max_bytes:
                raise RecordTooLarge(f"blob is {total} bytes, limit {max_bytes}")
            children = [d[i : i + 32] for i in range(9, len(d), 32)]
            sizes = _child_sizes(total, len(children))
            nxt.extend(zip(children, sizes, strict=True))
        level = nxt
    raise BadBody("blob tree is too deep")


def _child_sizes(total: int, n: int) -> list[int | None]:
    """Sizes children must cover: all full but the last, as split_blob builds them.

    Children are either leaves (MAX_LEAF_PAYLOAD each) or subtrees of equal capacity;
    only the sum is fixed by the parent, so sizes are checked when children arrive.
    """
    if n == 1:
        return [total]
    capacity = MAX_LEAF_PAYLOAD
    while capacity * n < total:
        capacity *= MAX_FANOUT
    sizes: list[int | None] = [capacity] * (n - 1)
    last = total - capacity * (n - 1)
    if last <= 0 or last > capacity:
        raise BadBody("blob index sizes are inconsistent")
    sizes.append(last)
    return sizes
