"""The keep-alive setting (docs/nat.md, "Keep-alives"): its bounds, the registration
lifetime that follows from it, and the node's command-line flag. Runs anywhere."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fairdht.dht.punch import MAX_REGISTRATION
from fairdht.node.reachability import (
    DEFAULT_KEEPALIVE,
    MAX_KEEPALIVE,
    ReachabilitySettings,
    registration_ttl,
)


def test_the_default_keepalive_comes_twice_within_a_30_s_home_router_timeout() -> None:
    assert ReachabilitySettings().keepalive == DEFAULT_KEEPALIVE
    assert 2 * DEFAULT_KEEPALIVE <= 30


@pytest.mark.parametrize("keepalive", [1.0, 2.0, 15.0, 30.0, MAX_KEEPALIVE])
def test_a_registration_outlives_three_keepalives(keepalive: float) -> None:
    ttl = registration_ttl(keepalive)
    assert ttl <= MAX_REGISTRATION
    # Two renewals may be lost before the registration lapses (one at the longest).
    assert ttl >= min(3 * keepalive, MAX_REGISTRATION)
    assert ttl >= 2 * keepalive


@pytest.mark.parametrize("keepalive", [0.0, 0.5, MAX_KEEPALIVE + 1])
def test_a_keepalive_out_of_bounds_is_refused(keepalive: float) -> None:
    with pytest.raises(ValueError, match="keepalive"):
        ReachabilitySettings(keepalive=keepalive)


@pytest.mark.parametrize("value", ["0", "0.5", "61", "soon"])
def test_the_node_refuses_a_bad_keepalive_flag(value: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "fairdht", "node", "--keepalive", value],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "--keepalive" in done.stderr
