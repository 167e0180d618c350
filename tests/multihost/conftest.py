"""Fixtures of the multi-host tests: a lab of network namespaces, or one line saying why not."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from netlab import NetLab, netlab, netns_unavailable


@pytest.fixture(scope="session")
def netns_ok() -> None:
    """Skip (with the reason) where this machine cannot make network namespaces."""
    reason = netns_unavailable()
    if reason is not None:
        pytest.skip(f"multi-host tests need network namespaces: {reason}")


@pytest.fixture
def lab(netns_ok: None) -> Iterator[NetLab]:
    """A fresh lab for one test, torn down even when the test fails."""
    with netlab("t") as made:
        yield made
