"""The ranking of eligible referees: a pure function of public inputs (docs/referee.md).

::

    seed = BLAKE2b-256("fairdht/referee-rank/v1\\x00" ‖ code_hash (32)
                       ‖ u16(len(match_id)) ‖ match_id (UTF-8)
                       ‖ u16(n_players) ‖ sorted player keys (32 each)
                       ‖ u16(n_nonces) ‖ sorted revealed nonces (32 each))
    rank_key(referee) = BLAKE2b-256(seed ‖ referee key (32))

Referees are ordered by ascending ``rank_key`` (ties, which need a hash collision,
by key). Every node with the same inputs computes the same order; a revealed nonce
changes the seed, so no player can predict the order before every nonce is out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import TypeVar

from fairdht.errors import UsageError

__all__ = ["RANK_DOMAIN", "rank_key", "rank_order", "rank_seed"]

RANK_DOMAIN = b"fairdht/referee-rank/v1\x00"

T = TypeVar("T")


def _u16(n: int) -> bytes:
    return n.to_bytes(2, "big")


def rank_seed(
    code_hash: bytes, match_id: str, players: Collection[bytes], nonces: Collection[bytes]
) -> bytes:
    """The 32-byte seed of a match's ranking; players and nonces are sorted here."""
    if len(code_hash) != 32:
        raise UsageError("a code hash is 32 bytes")
    if any(len(p) != 32 for p in players) or any(len(n) != 32 for n in nonces):
        raise UsageError("player keys and nonces are 32 bytes each")
    mid = match_id.encode("utf-8")
    h = hashlib.blake2b(digest_size=32)
    h.update(RANK_DOMAIN)
    h.update(code_hash)
    h.update(_u16(len(mid)) + mid)
    sorted_players = sorted(set(players))
    h.update(_u16(len(sorted_players)) + b"".join(sorted_players))
    sorted_nonces = sorted(nonces)
    h.update(_u16(len(sorted_nonces)) + b"".join(sorted_nonces))
    return h.digest()


def rank_key(seed: bytes, referee: bytes) -> bytes:
    """The sort key of ``referee`` under ``seed``."""
    return hashlib.blake2b(seed + referee, digest_size=32).digest()


def rank_order(seed: bytes, items: Iterable[T], referee_of: Callable[[T], bytes]) -> Sequence[T]:
    """``items`` sorted by the rank key of their referee (then by key, for stability)."""
    return sorted(items, key=lambda it: (rank_key(seed, referee_of(it)), referee_of(it)))
