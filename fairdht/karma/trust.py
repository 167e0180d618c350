"""Personalized trust: PageRank restarting at the reader and its trusted raters.

EigenTrust (Kamvar, Schlosser and Garcia-Molina, WWW 2003, §4.1 and §4.5) with the
restart set of personalized PageRank: each voter's positive opinions are normalized
to one unit of outgoing trust, and the walk returns to the reader's seeds with
probability ``restart`` at every step, so trust that leaves the honest region through
a few attack edges is diluted at every hop (SybilGuard's attack-edge argument).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["TrustResult", "personalized_trust", "reachable"]

_TOLERANCE = 1e-12


@dataclass(frozen=True, slots=True)
class TrustResult:
    """Each in-range key's share of the reader's trust (the shares sum to 1)."""

    trust: Mapping[bytes, float]
    hops: Mapping[bytes, int]
    iterations: int


def reachable(
    edges: Mapping[bytes, Mapping[bytes, float]],
    seeds: Iterable[bytes],
    *,
    max_hops: int,
    excluded: frozenset[bytes] = frozenset(),
) -> dict[bytes, int]:
    """Breadth-first hop distance from ``seeds`` along positive edges, up to ``max_hops``."""
    hops = {s: 0 for s in seeds if s not in excluded}
    frontier = list(hops)
    for depth in range(1, max_hops + 1):
        nxt = []
        for node in frontier:
            for target in edges.get(node, {}):
                if target not in hops and target not in excluded:
                    hops[target] = depth
                    nxt.append(target)
        frontier = nxt
    return hops


def personalized_trust(
    edges: Mapping[bytes, Mapping[bytes, float]],
    seeds: Iterable[bytes],
    *,
    restart: float,
    max_iterations: int,
    max_hops: int,
    excluded: frozenset[bytes] = frozenset(),
) -> TrustResult:
    """Power-iterate trust over ``edges`` (voter -> subject -> positive weight).

    Only keys within ``max_hops`` of a seed take part. A voter's outgoing weights are
    normalized over all its edges; the share sent to a key out of range or excluded,
    and the whole share of a key with no edges, returns to the seeds (the standard
    dangling-node rule), so no key gains from edges the reader did not walk.
    """
    hops = reachable(edges, seeds, max_hops=max_hops, excluded=excluded)
    if not hops:
        return TrustResult({}, {}, 0)
    nodes = sorted(hops)
    index = {node: i for i, node in enumerate(nodes)}
    seed_ids = [index[s] for s in sorted(set(seeds) - excluded) if s in index]
    restart_vec = [0.0] * len(nodes)
    for i in seed_ids:
        restart_vec[i] = 1.0 / len(seed_ids)
    out: list[list[tuple[int, float]]] = []
    for node in nodes:
        row = edges.get(node, {})
        total = sum(w for w in row.values() if w > 0)
        out.append(
            [(index[t], w / total) for t, w in sorted(row.items()) if w > 0 and t in index]
            if total > 0
            else []
        )
    pi = list(restart_vec)
    iterations = 0
    for step in range(1, max_iterations + 1):
        iterations = step
        nxt = [0.0] * len(nodes)
        for i, mass in enumerate(pi):
            if mass:
                for j, share in out[i]:
                    nxt[j] += mass * share
        returned = 1.0 - sum(nxt)  # dangling and out-of-range mass goes back to the seeds
        new = [
            restart * r + (1.0 - restart) * (x + returned * r)
            for x, r in zip(nxt, restart_vec, strict=True)
        ]
        delta = sum(abs(a - b) for a, b in zip(new, pi, strict=True))
        pi = new
        if delta < _TOLERANCE:
            break
    return TrustResult(dict(zip(nodes, pi, strict=True)), hops, iterations)
