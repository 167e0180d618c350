"""DHT key derivation: BLAKE2b-160 over a domain tag and length-prefixed parts."""

from __future__ import annotations

import hashlib

__all__ = ["KEY_BYTES", "derive_key"]

KEY_BYTES = 20
_DOMAIN = b"fairdht/key/v1"
_TAGGED: dict[str, hashlib.blake2b] = {}


def derive_key(tag: str, *parts: bytes) -> bytes:
    """Return the 20-byte DHT key for ``tag`` and ``parts``.

    key = BLAKE2b-160("fairdht/key/v1" ‖ u16(len(tag)) ‖ tag ‖ u16(len(p1)) ‖ p1 ‖ ...).
    Length prefixes keep ("ab", "c") and ("a", "bc") apart.
    """
    base = _TAGGED.get(tag)
    if base is None:
        base = hashlib.blake2b(digest_size=KEY_BYTES)
        encoded = tag.encode()
        base.update(_DOMAIN + len(encoded).to_bytes(2, "big") + encoded)
        if len(_TAGGED) < 256:  # tags are the kinds' constants; the bound is a safeguard
            _TAGGED[tag] = base
    h = base.copy()  # the domain and tag are hashed once per tag, not once per key
    h.update(b"".join(len(part).to_bytes(2, "big") + part for part in parts))
    return h.digest()
