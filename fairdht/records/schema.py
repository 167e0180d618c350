"""Small helpers that body parsers use to check untrusted maps field by field.

Every helper raises ``BadBody`` with the field's name; none raises anything else.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from fairdht.errors import BadBody

__all__ = [
    "CONTROL",
    "OCTET",
    "expect_map",
    "get_bool",
    "get_bytes",
    "get_int",
    "get_list",
    "get_str",
    "get_strs",
    "parse_endpoint",
]


CONTROL = re.compile("[\x00-\x1f\x7f]")
# Dotted-quad IPv4 without leading zeros and a port: the common case, parsed without
# the ipaddress module (which costs more than the rest of a record's checks).
OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4_PORT = re.compile(rf"({OCTET}(?:\.{OCTET}){{3}}):([1-9][0-9]{{0,4}})")


def expect_map(
    obj: Any, required: set[str], optional: frozenset[str] | set[str] = frozenset()
) -> dict[str, Any]:
    """Check ``obj`` is a map with exactly the required keys plus some optional ones."""
    if not isinstance(obj, dict):
        raise BadBody("body must be a map")
    if obj.keys() == required:  # the common case, compared in C
        return obj
    keys = set(obj)
    missing = required - keys
    if missing:
        raise BadBody(f"body is missing {', '.join(sorted(missing))}")
    extra = keys - required - optional
    if extra:
        raise BadBody(f"body has unknown field {', '.join(sorted(extra))}")
    return obj


def get_str(
    obj: dict[str, Any], name: str, *, max_len: int, min_len: int = 0, default: str | None = None
) -> str:
    """A str field of ``min_len`` to ``max_len`` characters, without control characters."""
    value = obj.get(name, default)
    if not isinstance(value, str):
        raise BadBody(f"{name} must be a string")
    if not min_len <= len(value) <= max_len:
        raise BadBody(f"{name} must be {min_len} to {max_len} characters")
    if CONTROL.search(value):
        raise BadBody(f"{name} must not contain control characters")
    return value


def get_strs(obj: dict[str, Any], fields: tuple[tuple[str, int, int], ...]) -> list[str]:
    """``get_str`` of each (name, min_len, max_len) in ``fields``, with one search for
    control characters over all of them (the hot path of record validation)."""
    values: list[str] = []
    for name, min_len, max_len in fields:
        value: Any = obj.get(name)
        if type(value) is not str or not min_len <= len(value) <= max_len:
            get_str(obj, name, max_len=max_len, min_len=min_len)  # raises, naming the field
        values.append(value)
    if CONTROL.search(" ".join(values)):
        for name, min_len, max_len in fields:
            get_str(obj, name, max_len=max_len, min_len=min_len)
    return values


def get_int(obj: dict[str, Any], name: str, *, lo: int, hi: int, default: int | None = None) -> int:
    """An int field in ``lo..hi`` (bools are not ints here)."""
    value = obj.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadBody(f"{name} must be an integer")
    if not lo <= value <= hi:
        raise BadBody(f"{name} must be between {lo} and {hi}")
    return value


def get_bool(obj: dict[str, Any], name: str, *, default: bool | None = None) -> bool:
    """A bool field."""
    value = obj.get(name, default)
    if not isinstance(value, bool):
        raise BadBody(f"{name} must be true or false")
    return value


def get_bytes(
    obj: dict[str, Any],
    name: str,
    *,
    length: int | None = None,
    max_len: int = 1024,
    default: bytes | None = None,
) -> bytes:
    """A bin field of exactly ``length`` bytes, or at most ``max_len``."""
    value = obj.get(name, default)
    if not isinstance(value, bytes):
        raise BadBody(f"{name} must be bytes")
    if length is not None and len(value) != length:
        raise BadBody(f"{name} must be {length} bytes")
    if len(value) > max_len:
        raise BadBody(f"{name} must be at most {max_len} bytes")
    return value


def get_list(
    obj: dict[str, Any], name: str, *, max_items: int, default: list[Any] | None = None
) -> list[Any]:
    """An array field with at most ``max_items`` items."""
    value = obj.get(name, default)
    if not isinstance(value, list):
        raise BadBody(f"{name} must be a list")
    if len(value) > max_items:
        raise BadBody(f"{name} must have at most {max_items} items")
    return value


def parse_endpoint(text: str, *, what: str = "address") -> tuple[str, int]:
    """Parse ``IP:PORT`` or ``[IPv6]:PORT`` with an IP literal; a hostname is refused."""
    if not isinstance(text, str) or len(text) > 64:
        raise BadBody(f"{what} must be IP:PORT")
    fast = _IPV4_PORT.fullmatch(text)
    if fast:
        port = int(fast[2])
        if port <= 65535:
            return fast[1], port
    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
        if not sep:
            raise BadBody(f"{what} must be [IPv6]:PORT")
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise BadBody(f"{what} must be IP:PORT")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise BadBody(f"{what} must be an IP literal, not a hostname: {host!r}") from None
    if text.startswith("[") != (ip.version == 6):
        raise BadBody(f"{what}: IPv6 addresses are written [ADDR]:PORT")
    if (
        not port_text.isdigit()
        or not 1 <= int(port_text) <= 65535
        or port_text != str(int(port_text))
    ):
        raise BadBody(f"{what} has an invalid port: {port_text!r}")
    return ip.compressed, int(port_text)
