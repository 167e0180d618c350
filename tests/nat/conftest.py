"""Fixtures of the NAT tests: the testbed of docs/nat.md, or one line saying why not."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from netlab import NatTestbed, nat_testbed, nat_unavailable, netlab


@pytest.fixture(scope="session")
def nat_ok() -> None:
    """Skip (with the reason) where this machine cannot build NAT routers."""
    reason = nat_unavailable()
    if reason is not None:
        pytest.skip(f"NAT tests need network namespaces and nftables: {reason}")


@pytest.fixture(scope="module")
def bed(nat_ok: None) -> Iterator[NatTestbed]:
    """Entries e1-e3, a public host "pub" and homes fc/pr/sym/cg; torn down at the end."""
    with netlab("n") as lab:
        yield nat_testbed(lab, publics=("pub",), cgnat=True)
