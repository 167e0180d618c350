"""Canonical msgpack: one value, one byte form.

Rules (docs/protocol.md, "Canonical encoding"): maps have str keys in bytewise-sorted
UTF-8 order; ints, strs, bins, arrays and maps use msgpack's shortest form (what
msgpack-python emits); str is UTF-8, bin is raw bytes; floats, ext types and
non-str map keys are not allowed. A decoder re-encodes and compares, so any other
byte form of the same value is refused.
"""

from __future__ import annotations

from typing import Any

import msgpack

from fairdht.errors import MalformedRecord

__all__ = ["canonical_pack", "strict_unpack"]

_MAX_DEPTH = 16


def _normalize(value: Any, depth: int = 0) -> Any:
    if depth > _MAX_DEPTH:
        raise MalformedRecord("value nested too deeply")
    if value is None or isinstance(value, bool | int | str | bytes):
        return value
    if isinstance(value, list | tuple):
        return [_normalize(v, depth + 1) for v in value]
    if isinstance(value, dict):
        for k in value:
            if not isinstance(k, str):
                raise MalformedRecord("map keys must be strings")
        return {k: _normalize(value[k], depth + 1) for k in sorted(value, key=str.encode)}
    raise MalformedRecord(f"type {type(value).__name__} is not allowed in a record")


def canonical_pack(value: Any) -> bytes:
    """Encode ``value`` in canonical msgpack; raise MalformedRecord for disallowed types."""
    packed: bytes = msgpack.packb(_normalize(value), use_bin_type=True)
    return packed


def _no_ext(code: int, data: bytes) -> Any:
    raise MalformedRecord("msgpack ext types are not allowed")


def strict_unpack(data: bytes) -> Any:
    """Decode untrusted msgpack; raise MalformedRecord for anything undecodable.

    Invariant (STYLE.md, after h11): this returns a value or raises MalformedRecord,
    never any other exception.
    """
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            use_list=True,
            ext_hook=_no_ext,
        )
    except MalformedRecord:
        raise
    except Exception as exc:  # msgpack raises many types (ValueError, ExtraData, ...)
        raise MalformedRecord(f"undecodable msgpack: {type(exc).__name__}") from None
