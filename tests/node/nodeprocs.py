"""Helpers of the process tests: bounded polling and status reads."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from fairdht.api.client import ApiClient
from fairdht.node.launcher import NodeProcess

Launch = Callable[..., NodeProcess]


def wait_for(predicate: Callable[[], Any], *, timeout: float, what: str) -> Any:
    """Poll ``predicate`` every 0.1 s until it returns a true value; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def peers_of(node: NodeProcess) -> int:
    """The node's routing-table contacts, from its API."""
    count: int = ApiClient(node.api_url).status()["peers"]
    return count


def wait_peers(node: NodeProcess, at_least: int, *, timeout: float = 30.0) -> int:
    """Wait until the node has ``at_least`` routing-table contacts; return the count."""
    count: int = wait_for(
        lambda: (n := peers_of(node)) >= at_least and n,
        timeout=timeout,
        what=f"{node.data_dir.root.name} to have {at_least} contacts",
    )
    return count
