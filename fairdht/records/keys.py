"""DHT key derivation: BLAKE2b-160 over a domain tag and length-prefixed parts."""

from __future__ import annotations

import hashlib

__all__ = ["KEY_BYTES", "derive_key"]

KEY_BYTES = 20
_DOMAIN = b"fairdht/key/v1"


def derive_key(tag: str, *parts: bytes) -> bytes:
    """Return the 20-byte DHT key for ``tag`` and ``parts``.

    key = BLAKE2b-160("fairdht/key/v1" ‖ u16(len(tag)) ‖ tag ‖ u16(len(p1)) ‖ p1 ‖ ...).
    Length prefixes keep ("ab", "c") and ("a", "bc") apart.
    """
    h = hashlib.blake2b(digest_size=KEY_BYTES)
    h.update(_DOMAIN)
    for part in (tag.encode(), *parts):
        h.update(len(part).to_bytes(2, "big"))
        h.update(part)
    return h.digest()
