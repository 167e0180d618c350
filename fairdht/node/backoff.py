"""Exponential backoff with jitter for bootstrap retries (pure: the caller sleeps)."""

from __future__ import annotations

import random

__all__ = ["backoff_delay"]


def backoff_delay(attempt: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Seconds to wait before retry number ``attempt`` (0-based).

    The ceiling doubles from ``base`` up to ``cap``; the delay is drawn from the upper
    half of it ("equal jitter", AWS Architecture Blog, "Exponential Backoff And
    Jitter", 2015), so many nodes that lost the same entry nodes at once spread their
    retries instead of hitting the entry points in lockstep, and none spins at 0 s.
    """
    if base <= 0 or cap < base:
        raise ValueError("backoff needs 0 < base <= cap")
    # min() before the power keeps a long outage from overflowing the float.
    ceiling = min(cap, base * 2.0 ** min(max(attempt, 0), 62))
    return ceiling / 2 + rng.uniform(0.0, ceiling / 2)
