"""Kind ``chunk``: one piece of a content-addressed blob (Inexor seed, "signing content").

The subkey is BLAKE2b-256 of the data and the DHT key derives from the subkey alone,
so every copy of a chunk, whoever signed it, lives under the same key and readers
trust the hash, not the signer. Manifests name blob ids; trust in a manifest's signer
is what authorizes content.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Self

from fairdht.errors import BadBody
from fairdht.records.keys import derive_key
from fairdht.records.registry import KindSpec, register_kind
from fairdht.records.schema import expect_map, get_bytes

__all__ = ["CHUNK_KIND", "MAX_CHUNK_DATA", "Chunk", "chunk_hash", "chunk_key"]

CHUNK_KIND = "chunk"
# A chunk record is ~150 bytes of envelope plus the data; 760 keeps it under 1 KiB.
MAX_CHUNK_DATA = 760


def chunk_hash(data: bytes) -> bytes:
    """The content address of a chunk's data: BLAKE2b-256."""
    return hashlib.blake2b(data, digest_size=32).digest()


@dataclass(frozen=True, slots=True)
class Chunk:
    """Up to MAX_CHUNK_DATA bytes of a blob."""

    data: bytes

    def to_wire(self) -> dict[str, Any]:
        """The canonical map."""
        return {"data": self.data}

    @classmethod
    def from_wire(cls, obj: Any) -> Self:
        """Parse an untrusted map."""
        m = expect_map(obj, {"data"})
        return cls(get_bytes(m, "data", max_len=MAX_CHUNK_DATA))


def _check(record: Any) -> None:
    if record.subkey != chunk_hash(record.body.data):
        raise BadBody("chunk subkey is not the BLAKE2b-256 of its data")


register_kind(
    KindSpec(
        name=CHUNK_KIND,
        body_type=Chunk,
        max_ttl=7 * 24 * 3600,
        key_tag="chunk",
        key_parts=lambda network, author, subkey: (subkey,),
        subkey_len=(32, 32),
        check=_check,
    )
)


def chunk_key(digest: bytes) -> bytes:
    """The DHT key of the chunk whose data hashes to ``digest``."""
    return derive_key("chunk", digest)
