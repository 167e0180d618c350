"""Checked query, path and JSON-body parameters: bad input is a 400 before any DHT call."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from fairdht.api.errors import ApiError
from fairdht.api.refusals import count_refusal
from fairdht.errors import BadBody
from fairdht.records.envelope import check_network_name
from fairdht.trust import DEMO_NETWORK

__all__ = [
    "flag",
    "hex_bytes",
    "int_param",
    "json_body",
    "network_param",
    "parse_json",
    "public_key_param",
]

_TRUE = {"1", "true", "yes"}
_FALSE = {"", "0", "false", "no"}


def network_param(request: web.Request, *, default: str | None = DEMO_NETWORK) -> str:
    """``?network=`` checked like every record's network name (default: the demo network)."""
    text = request.query.get("network", "")
    if not text:
        if default is None:
            raise ApiError(400, "query parameter network is required")
        return default
    try:
        return check_network_name(text)
    except BadBody as exc:
        raise ApiError(400, f"network: {exc}") from None


def hex_bytes(text: str, size: int, what: str) -> bytes:
    """``size`` bytes written as lowercase or uppercase hex, else a 400 naming ``what``."""
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != size:
        raise ApiError(400, f"{what} must be {size * 2} hex digits")
    return raw


def public_key_param(text: str, what: str = "the public key") -> bytes:
    """An Ed25519 public key (32 bytes of hex)."""
    return hex_bytes(text, 32, what)


def flag(request: web.Request, name: str, *, default: bool = False) -> bool:
    """A boolean query parameter (1/0, true/false, yes/no)."""
    if name not in request.query:
        return default
    value = request.query[name].lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ApiError(400, f"query parameter {name} must be 1 or 0")


def int_param(request: web.Request, name: str, *, default: int, low: int, high: int) -> int:
    """An integer query parameter within ``low..high``."""
    text = request.query.get(name, "")
    if not text:
        return default
    # isascii: str.isdigit() also takes other scripts' digits ("٣"), which int() reads.
    if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
        raise ApiError(400, f"query parameter {name} must be a whole number from {low} to {high}")
    return int(text)


def parse_json(request: web.Request, data: bytes) -> Any:
    """``data`` parsed as JSON, else a 400 that says why (counted as a ``json`` refusal)."""
    try:
        return json.loads(data)
    except RecursionError:
        # The parser recurses once per nesting level: 30,000 ``[`` exhaust the stack.
        # No document of this API nests more than 3 levels.
        count_refusal(request.app, "json")
        raise ApiError(400, "the body's JSON is nested too deeply") from None
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        count_refusal(request.app, "json")
        raise ApiError(400, "the body is not valid JSON") from None


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body, else a 400."""
    if request.content_type != "application/json":
        raise ApiError(415, "send the body as application/json")
    document = parse_json(request, await request.read())
    if not isinstance(document, dict):
        raise ApiError(400, "the body must be a JSON object")
    return document
