"""Bootstrap retry delays: exponential, capped, jittered, never zero."""

from __future__ import annotations

import random

import pytest

from fairdht.node import backoff_delay


def test_delays_grow_then_stay_under_the_cap() -> None:
    rng = random.Random(7)
    for attempt in range(80):
        ceiling = min(60.0, 2.0**attempt)
        delay = backoff_delay(attempt, base=1.0, cap=60.0, rng=rng)
        assert ceiling / 2 <= delay <= ceiling


def test_jitter_spreads_nodes_that_retry_together() -> None:
    delays = {backoff_delay(5, base=1.0, cap=60.0, rng=random.Random(seed)) for seed in range(50)}
    assert len(delays) == 50
    assert max(delays) - min(delays) > 5.0


def test_huge_attempt_numbers_do_not_overflow() -> None:
    assert backoff_delay(10**9, base=0.5, cap=30.0, rng=random.Random(1)) <= 30.0


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="base"):
        backoff_delay(0, base=0.0, cap=1.0, rng=random.Random(1))
    with pytest.raises(ValueError, match="base"):
        backoff_delay(0, base=2.0, cap=1.0, rng=random.Random(1))
