"""``GET /api/records/{key}`` reads records under a DHT key; ``POST /api/records`` puts one.

``GET ...?local=1`` answers from this node's own store without asking the network
(used to find which nodes hold a record); ``withdrawn=1`` includes tombstones.
"""

from __future__ import annotations

from aiohttp import web

from fairdht.api.auth import require_token
from fairdht.api.context import NODE
from fairdht.api.errors import ApiError
from fairdht.api.params import parse_json
from fairdht.api.render import record_json
from fairdht.records import KEY_BYTES, validate_record

__all__ = ["get_records", "parse_key", "post_record", "register"]

_TRUE = {"1", "true", "yes"}
_FALSE = {"", "0", "false", "no"}


def parse_key(text: str) -> bytes:
    """A DHT key from ``KEY_BYTES`` bytes of hex, else a 400 ApiError."""
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ApiError(400, f"the key must be {KEY_BYTES * 2} hex digits") from None
    if len(key) != KEY_BYTES:
        raise ApiError(400, f"the key must be {KEY_BYTES * 2} hex digits, got {len(text)}")
    return key


def _flag(request: web.Request, name: str) -> bool:
    value = request.query.get(name, "").lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ApiError(400, f"query parameter {name} must be 1 or 0")


async def get_records(request: web.Request) -> web.Response:
    """Records under the key: merged from the network, or this node's own with local=1."""
    node = request.app[NODE]
    key = parse_key(request.match_info["key"])
    include_withdrawn = _flag(request, "withdrawn")
    local = _flag(request, "local")
    if local:
        records = node.store.get(key, now=node.clock(), include_withdrawn=include_withdrawn)
    else:
        records = await node.dht.get(key, include_withdrawn=include_withdrawn)
    return web.json_response(
        {"key": key.hex(), "local": local, "records": [record_json(r) for r in records]}
    )


async def _record_bytes(request: web.Request) -> bytes:
    body = await request.read()
    if request.content_type != "application/json":
        return body
    document = parse_json(request, body)
    text = document.get("record") if isinstance(document, dict) else None
    if not isinstance(text, str):
        raise ApiError(400, 'a JSON body must be {"record": "<hex of the record bytes>"}')
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise ApiError(400, "record is not valid hex") from None


async def post_record(request: web.Request) -> web.Response:
    """Validate a signed record (raw bytes, or hex in JSON) and put it into the DHT."""
    require_token(request)
    node = request.app[NODE]
    data = await _record_bytes(request)
    if not data:
        raise ApiError(400, "the body is empty; send the record bytes or JSON with its hex")
    record = validate_record(data, now=node.clock())
    result = await node.dht.put(record)
    return web.json_response(
        {
            "key": record.key.hex(),
            "accepted": result.accepted,
            "asked": result.asked,
            "refusals": dict(result.refusals),
            "record": record_json(record),
        },
        status=201,
    )


def register(app: web.Application) -> None:
    """Add the record routes."""
    app.router.add_get("/api/records/{key}", get_records)
    app.router.add_post("/api/records", post_record)
