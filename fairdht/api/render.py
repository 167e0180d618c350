"""JSON forms of records: raw bytes as hex plus the decoded envelope fields."""

from __future__ import annotations

from typing import Any

from fairdht.records import Record

__all__ = ["jsonable", "record_json"]


def jsonable(value: Any) -> Any:
    """Convert a decoded msgpack value to JSON: bytes become lowercase hex."""
    match value:
        case bytes():
            return value.hex()
        case dict():
            return {str(k): jsonable(v) for k, v in value.items()}
        case list() | tuple():
            return [jsonable(v) for v in value]
        case _:
            return value


def record_json(record: Record) -> dict[str, Any]:
    """A record as a JSON object (``raw`` is the signed bytes in hex)."""
    return {
        "raw": record.raw.hex(),
        "key": record.key.hex(),
        "kind": record.kind,
        "network": record.network,
        "subkey": record.subkey.hex(),
        "author": record.author.hex(),
        "seq": record.seq,
        "issued_at": record.issued_at,
        "expires_at": record.expires_at,
        "withdrawn": record.withdrawn,
        "body": None if record.body is None else jsonable(record.body.to_wire()),
        "sig": record.sig.hex(),
    }
