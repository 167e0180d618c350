"""Helpers of the process tests: bounded polling and status reads."""

from __future__ import annotations

from collections.abc import Callable

from waiting import wait_for

from fairdht.api.client import ApiClient
from fairdht.node.launcher import NodeProcess

Launch = Callable[..., NodeProcess]


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
