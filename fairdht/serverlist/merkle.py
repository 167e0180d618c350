"""Leaves, the state root and inclusion proofs: RFC 9162 §2.1 with BLAKE2b-256.

The Merkle Tree Hash (RFC 9162 §2.1.1) over n leaf values d(0..n-1)::

    MTH({})      = HASH()
    MTH({d(0)})  = HASH(0x00 ‖ d(0))
    MTH(D[n])    = HASH(0x01 ‖ MTH(D[0:k]) ‖ MTH(D[k:n])),  k = largest power of 2 < n

with HASH = BLAKE2b-256 instead of SHA-256. The leaf values are the 32-byte leaf ids of
the live announcements (``leaf_id``), sorted bytewise, so the root names a set.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from fairdht.errors import BadBody

__all__ = [
    "EMPTY_ROOT",
    "LEAF_DOMAIN",
    "hash_children",
    "hash_leaf",
    "inclusion_proof",
    "leaf_id",
    "state_root",
    "verify_inclusion",
]

LEAF_DOMAIN = b"fairdht/leaf/v1"


def _h(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=32).digest()


EMPTY_ROOT = _h(b"")


def leaf_id(network: str, author: bytes, subkey: bytes, address: str) -> bytes:
    """BLAKE2b-256(domain ‖ u8 len ‖ network ‖ author ‖ u8 len ‖ subkey ‖ u8 len ‖ address).

    One length byte before each variable field (all are < 256 bytes) makes the framing
    unambiguous; the author is always 32 bytes.
    """
    net, addr = network.encode(), address.encode()
    if len(author) != 32 or max(len(net), len(subkey), len(addr)) > 255:
        raise BadBody("leaf fields out of range")
    return _h(
        LEAF_DOMAIN
        + bytes([len(net)])
        + net
        + author
        + bytes([len(subkey)])
        + subkey
        + bytes([len(addr)])
        + addr
    )


def hash_leaf(value: bytes) -> bytes:
    """RFC 9162 leaf hash: HASH(0x00 ‖ value)."""
    return _h(b"\x00" + value)


def hash_children(left: bytes, right: bytes) -> bytes:
    """RFC 9162 interior node hash: HASH(0x01 ‖ left ‖ right)."""
    return _h(b"\x01" + left + right)


def _split(n: int) -> int:
    """The largest power of two strictly smaller than n (n ≥ 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _mth(leaves: Sequence[bytes]) -> bytes:
    n = len(leaves)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return hash_leaf(leaves[0])
    k = _split(n)
    return hash_children(_mth(leaves[:k]), _mth(leaves[k:]))


def state_root(leaves: Sequence[bytes]) -> bytes:
    """The Merkle Tree Hash of the bytewise-sorted, de-duplicated ``leaves``."""
    return _mth(sorted(set(leaves)))


def _path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    # RFC 9162 §2.1.3.1: PATH(m, D[n]).
    n = len(leaves)
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return [*_path(m, leaves[:k]), _mth(leaves[k:])]
    return [*_path(m - k, leaves[k:]), _mth(leaves[:k])]


def inclusion_proof(leaves: Sequence[bytes], leaf: bytes) -> tuple[int, int, list[bytes]]:
    """(index, tree size, audit path) proving ``leaf`` is in the set ``leaves``.

    Raises ``KeyError`` if ``leaf`` is not a member.
    """
    ordered = sorted(set(leaves))
    try:
        index = ordered.index(leaf)
    except ValueError:
        raise KeyError("leaf is not a member of this set") from None
    return index, len(ordered), _path(index, ordered)


def verify_inclusion(
    leaf: bytes, index: int, size: int, path: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2: True iff ``path`` proves ``leaf`` at ``index`` of a tree of ``root``."""
    if not 0 <= index < size:
        return False
    fn, sn = index, size - 1
    r = hash_leaf(leaf)
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = hash_children(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = hash_children(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root
