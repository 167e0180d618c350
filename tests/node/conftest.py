"""Fixtures that start real ``fairdht node`` processes and always stop them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from nodeprocs import Launch

from fairdht.node.launcher import NodeProcess


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Launch]:
    """Start node N on 127.0.N.1 (port 0) with its HTTP API; every child is killed at the end."""
    started: list[NodeProcess] = []

    def start(
        n: int,
        *,
        bootstrap: Sequence[NodeProcess | str] = (),
        data_dir: Path | None = None,
        extra: Sequence[str] = (),
    ) -> NodeProcess:
        node = NodeProcess(
            data_dir or tmp_path / f"node{n}",
            listen=f"127.0.{n}.1:0",
            bootstrap=[b if isinstance(b, str) else b.udp for b in bootstrap],
            extra_args=["--rpc-timeout", "0.5", "--retry-cap", "2", *extra],
        )
        started.append(node)
        node.start()
        return node

    try:
        yield start
    finally:
        for node in started:
            node.kill()
