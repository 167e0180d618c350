"""Length-prefixed msgpack frames: ``u32 big-endian length ‖ msgpack map``.

Used on a rules process's stdin/stdout (docs/game-rules.md) and, sealed, on the
referee's session connections. Frames are at most MAX_FRAME bytes; a longer length
prefix is a protocol error, so a peer cannot make us buffer without bound.
"""

from __future__ import annotations

import asyncio
from typing import Any, BinaryIO

import msgpack

from fairdht.errors import ProtocolError

__all__ = ["MAX_FRAME", "decode_payload", "encode_frame", "read_frame", "read_frame_sync"]

MAX_FRAME = 64 * 1024


def encode_frame(payload: bytes) -> bytes:
    """Prefix ``payload`` with its length."""
    if len(payload) > MAX_FRAME:
        raise ProtocolError(f"frame of {len(payload)} bytes exceeds {MAX_FRAME}")
    return len(payload).to_bytes(4, "big") + payload


def decode_payload(payload: bytes) -> dict[str, Any]:
    """Decode one frame's msgpack map; raise ProtocolError for anything else."""
    try:
        value = msgpack.unpackb(payload, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises many types on garbage
        raise ProtocolError(f"undecodable frame: {type(exc).__name__}") from None
    if not isinstance(value, dict):
        raise ProtocolError("a frame must hold a map")
    return value


def _length(header: bytes) -> int:
    size = int.from_bytes(header, "big")
    if size > MAX_FRAME:
        raise ProtocolError(f"frame length {size} exceeds {MAX_FRAME}")
    return size


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    """Read one frame's payload; IncompleteReadError at a clean end of stream."""
    size = _length(await reader.readexactly(4))
    return await reader.readexactly(size)


def read_frame_sync(stream: BinaryIO) -> bytes | None:
    """Read one frame's payload from a blocking stream; None at end of stream."""
    header = stream.read(4)
    if len(header) < 4:
        return None
    size = _length(header)
    payload = stream.read(size)
    if len(payload) < size:
        return None
    return payload
