"""Deterministic identities and addresses for simulated nodes."""

from __future__ import annotations

import hashlib
from functools import cache

from fairdht.identity import SigningKey, puzzle_bits

__all__ = ["MAX_SIM_NODES", "sim_host", "sim_key"]

# Each simulated node gets its own /24 (10.a.b.1), like "node N on 127.0.N.1" on real
# loopback (DESIGN.md), so per-/24 routing-table limits (issue 9) don't bite by accident.
# Past 65,536 nodes the first octet goes on to 11..25 (ordinary unicast blocks: only a
# simulation's in-memory network ever sees them), for up to 16 x 65,536 nodes.
MAX_SIM_NODES = 16 * 256 * 256


def sim_host(index: int) -> str:
    """The IPv4 address of simulated node ``index``:
    ``<10 + index // 65536>.<index // 256 % 256>.<index % 256>.1``."""
    if not 0 <= index < MAX_SIM_NODES:
        raise ValueError(f"node index must be in 0..{MAX_SIM_NODES - 1}, got {index}")
    return f"{10 + (index >> 16)}.{(index >> 8) & 0xFF}.{index & 0xFF}.1"


@cache
def sim_key(index: int, *, seed: int = 0, puzzle: int = 0) -> SigningKey:
    """The signing key of simulated node ``index``: derived from (seed, index), never random.

    With ``puzzle`` > 0 the first derived seed whose node id passes S/Kademlia's static
    puzzle (§4.1: ``puzzle`` leading zero bits of BLAKE2b(id)) is used; a simulation
    keeps D small (DESIGN.md), and the cache makes a second build of the same N free.
    """
    for attempt in range(1 << min(puzzle + 12, 40)):
        material = b"fairdht/sim/key/v1|%d|%d|%d" % (seed, index, attempt)
        key = SigningKey(hashlib.blake2b(material, digest_size=32).digest())
        if puzzle == 0 or puzzle_bits(key.node_id) >= puzzle:
            return key
    raise ValueError(f"no key for node {index} passes a {puzzle}-bit puzzle")
