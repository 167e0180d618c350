"""State root and inclusion proofs: RFC 9162 §2.1 with BLAKE2b-256, pinned by vectors."""

from __future__ import annotations

import hashlib

import pytest

from fairdht.serverlist.merkle import (
    EMPTY_ROOT,
    hash_children,
    hash_leaf,
    inclusion_proof,
    leaf_id,
    state_root,
    verify_inclusion,
)

LEAVES = [bytes([i]) * 32 for i in range(7)]


def _h(b: bytes) -> bytes:
    return hashlib.blake2b(b, digest_size=32).digest()


def _levels_root(leaves: list[bytes]) -> bytes:
    """An independent bottom-up MTH: pair left to right, carry an odd last node up.

    For RFC 9162's split (largest power of two smaller than n) this gives the same tree.
    """
    if not leaves:
        return _h(b"")
    level = [_h(b"\x00" + x) for x in sorted(set(leaves))]
    while len(level) > 1:
        nxt = [_h(b"\x01" + level[i] + level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def test_known_answer_vectors() -> None:
    assert EMPTY_ROOT.hex() == "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8"
    assert state_root(LEAVES[:1]).hex() == (
        "d8908c165dee785924e7421a0fd0418a19d5daeec395fd505a92a0fd3117e428"
    )
    assert state_root(LEAVES[:2]).hex() == (
        "fa58e34ac53c9bb7b87b36ac8f863e802bb942a0924532cabfd8a351507c6bef"
    )
    assert state_root(LEAVES[:3]).hex() == (
        "cdcce76799ccfa20cdc9d4fb0b058f2ba3507fe82f5785e55cda3ed23f4626f2"
    )
    assert state_root(LEAVES).hex() == (
        "c09bbb150d42b6d3060703eeba98a9081a84083187606af6de6bf8bfe0fe3a0f"
    )
    assert leaf_id("demo", b"\x01" * 32, b"\x02" * 16, "127.0.0.1:28785").hex() == (
        "f962b215d08274c524898e4d21630e2641047aaf411e02510fd852bbd594f8f9"
    )
    assert leaf_id("demo", b"\x01" * 32, b"\x02" * 16, "[2001:db8::1]:28785").hex() == (
        "af527fac26cbe786c1133333022ca6bf2d2244ee5b28e63748a7b1d9768ba4ed"
    )


def test_structure_follows_rfc9162() -> None:
    a, b, c = LEAVES[:3]
    assert state_root([a]) == _h(b"\x00" + a)
    assert state_root([a, b]) == hash_children(hash_leaf(a), hash_leaf(b))
    # n = 3 splits at k = 2: (a b) then c.
    assert state_root([c, a, b]) == hash_children(
        hash_children(hash_leaf(a), hash_leaf(b)), hash_leaf(c)
    )
    for n in range(0, 40):
        leaves = [_h(bytes([i])) for i in range(n)]
        assert state_root(leaves) == _levels_root(leaves)


def test_root_is_a_set_function() -> None:
    assert state_root(LEAVES) == state_root(list(reversed(LEAVES)) + LEAVES[:2])
    assert state_root(LEAVES) != state_root(LEAVES[:-1])


def test_leaf_framing_is_unambiguous() -> None:
    author = b"\x07" * 32
    assert leaf_id("ab", author, b"c", "1.2.3.4:5") != leaf_id("a", author, b"bc", "1.2.3.4:5")
    assert leaf_id("n", author, b"ab", "1.2.3.4:5") != leaf_id("n", author, b"a", "b1.2.3.4:5")


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 33])
def test_inclusion_proofs_verify_for_members_only(n: int) -> None:
    leaves = [_h(b"leaf" + bytes([i])) for i in range(n)]
    root = state_root(leaves)
    for leaf in leaves:
        index, size, path = inclusion_proof(leaves, leaf)
        assert size == n
        assert verify_inclusion(leaf, index, size, path, root)
        outsider = _h(b"not a member")
        assert not verify_inclusion(outsider, index, size, path, root)
        assert not verify_inclusion(leaf, index, size, path, _h(b"other root"))
        if n > 1:
            assert not verify_inclusion(leaf, (index + 1) % n, size, path, root)
            assert not verify_inclusion(leaf, index, size, path[:-1], root)
            bad = [bytes(32), *path[1:]]
            assert not verify_inclusion(leaf, index, size, bad, root)
        assert not verify_inclusion(leaf, index, size, [*path, bytes(32)], root)
    with pytest.raises(KeyError):
        inclusion_proof(leaves, _h(b"not a member"))


def test_verify_rejects_out_of_range_indexes() -> None:
    leaves = LEAVES[:4]
    root = state_root(leaves)
    _, size, path = inclusion_proof(leaves, LEAVES[0])
    assert not verify_inclusion(LEAVES[0], 4, size, path, root)
    assert not verify_inclusion(LEAVES[0], -1, size, path, root)
