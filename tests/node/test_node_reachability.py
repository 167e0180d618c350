"""``fairdht node --reachability check`` on loopback: a node that peers can dial back is
proven public and only then enters their routing tables (docs/nat.md). The NAT cases,
where it is not, run between namespaces in tests/nat."""

from __future__ import annotations

from nodeprocs import Launch, peers_of
from waiting import wait_for

from fairdht.api.client import ApiClient


def test_a_checking_node_is_proven_public_and_then_admitted(launch: Launch) -> None:
    # The entry node is public by declaration, as an operator with a fixed address runs it.
    first = launch(1, extra=["--reachability", "assume-public"])
    first.wait_ready()
    second = launch(2, bootstrap=[first])
    second.wait_ready()
    wait_for(lambda: peers_of(first) >= 1, timeout=20, what="node 1 to know node 2")
    checking = launch(3, bootstrap=[first, second], extra=["--reachability", "check"])
    checking.wait_ready()
    status = wait_for(
        lambda: (doc := ApiClient(checking.api_url).status())["reachable"] == "public" and doc,
        timeout=30,
        what="node 3's verdict",
    )
    assert "dialled back" in status["reachable_reason"]
    assert status["observed"] == checking.udp
    assert status["rendezvous"] == []  # a public node needs no rendezvous
    wait_for(lambda: peers_of(first) >= 2, timeout=20, what="node 1 to admit node 3")
    # A node declared public says it was not checked.
    plain = ApiClient(first.api_url).status()
    assert plain["reachable"] == "public" and "not checked" in plain["reachable_reason"]
