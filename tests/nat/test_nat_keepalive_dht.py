"""Keep-alives under short NAT mapping timeouts (docs/nat.md, "Keep-alives").

The home routers forget an idle UDP mapping after 5 s (``mapping_timeout``; real home
gateways after 30 s or more). Behind the port-restricted and the symmetric router run
two ``fairdht node`` processes each, one with a 2 s keep-alive and one (the negative
control) whose keep-alive of 60 s never comes within the test. After three mapping
timeouts, public hosts try to reach each of them through its rendezvous node, as a
player would: a punch (``connect_via``) to the port-restricted ones, a relay circuit
(``open_relay``) to the symmetric ones. Only the nodes that kept their mapping open are
reached; the router's own conntrack table shows the mapping kept or gone.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from netlab import Host, NatTestbed, nat_testbed, netlab
from waiting import wait_for

from fairdht.dht import DHTConfig, DHTNode
from fairdht.dht.relay import Circuit, RelayProtocol
from fairdht.dht.storage import MemoryRecordStore
from fairdht.identity import SigningKey
from fairdht.node.launcher import NodeProcess

MAPPING_TIMEOUT = 5
ROUNDS = 4


@dataclass(frozen=True)
class Target:
    name: str
    host: Host
    node: NodeProcess
    initiator: Host
    relay: bool  # reached through a relay circuit (symmetric NAT), else by a punch

    def status(self) -> dict[str, Any]:
        doc: dict[str, Any] = self.host.get_json(self.node.api_url + "/api/status")
        return doc

    def key(self) -> bytes:
        assert self.node.info is not None
        return bytes.fromhex(self.node.info.public_key)


@pytest.fixture(scope="module")
def short_bed(nat_ok: None) -> Iterator[NatTestbed]:
    """Entries e1-e3, four public initiator hosts, homes pr and sym that forget an idle
    mapping after MAPPING_TIMEOUT seconds."""
    with netlab("ka") as lab:
        yield nat_testbed(
            lab,
            publics=("p1", "p2", "p3", "p4"),
            only=("pr", "sym"),
            mapping_timeout=MAPPING_TIMEOUT,
        )


def mapped(router: Host, inner: str, sport: int, peer: str) -> bool:
    """Whether ``router`` holds a UDP mapping from ``inner``:``sport`` to ``peer`` (IP:PORT)."""
    ip, port = peer.rsplit(":", 1)
    want = f"src={inner} dst={ip} sport={sport} dport={port} "
    table = router.sh(["cat", "/proc/net/nf_conntrack"])
    return any(" udp " in line and want in line for line in table.splitlines())


def attempt(
    initiator: Host,
    rendezvous: str,
    target: bytes,
    relay: bool,
    gate: Callable[[], bool] = lambda: True,
) -> bool | None:
    """From a fresh node on ``initiator``: is ``target`` reached through ``rendezvous``?
    A punched path that a ping then crosses, or a relay circuit the target accepted.
    None when ``gate``, asked just before the offer goes out, says not now."""

    async def main() -> bool | None:
        node = DHTNode(
            SigningKey.generate(), MemoryRecordStore(), config=DHTConfig(rpc_timeout=0.5)
        )
        node.protocol_class = RelayProtocol
        await node.listen("0.0.0.0", 0)
        try:
            proto = node.protocol
            assert isinstance(proto, RelayProtocol)
            proto.set_hidden(True)
            ip, port = rendezvous.rsplit(":", 1)
            at = (ip, int(port))
            # The rendezvous node's address token first, so the gate is asked last.
            await proto.call_ping(at)
            if not gate():
                return None
            if relay:
                return isinstance(await proto.open_relay(at, target), Circuit)
            got = await proto.connect_via(at, target)
            return isinstance(got, tuple) and await proto.call_ping(got) is not None
        finally:
            await node.stop()

    return initiator.call(lambda: asyncio.run(main()))


def test_keepalives_keep_a_node_behind_nat_reachable_past_mapping_timeouts(
    short_bed: NatTestbed, tmp_path: Path
) -> None:
    bed = short_bed
    e1 = bed.entries[0]
    first = e1.node(tmp_path / "e1")
    first.wait_ready()
    entries = [e1.endpoint(4000)]
    for host in bed.entries[1:]:
        host.node(tmp_path / host.name, bootstrap=entries).wait_ready()
    initiators = iter(bed.entries[3:])
    targets = []
    for home in ("pr", "sym"):
        host = bed.homes[home].host
        for port, keepalive in ((4000, "2"), (4001, "60")):
            name = f"{home}-{keepalive}s"
            node = host.node(
                tmp_path / name,
                port=port,
                bootstrap=entries,
                extra=[
                    "--reachability",
                    "check",
                    "--reachability-interval",
                    "600",
                    "--keepalive",
                    keepalive,
                ],
            )
            targets.append(Target(name, host, node, next(initiators), relay=home == "sym"))
    for target in targets:
        target.node.wait_ready()

    def rendezvous(target: Target) -> str:
        doc = target.status()
        return str(doc["rendezvous"][0]) if doc["rendezvous"] else ""

    at = {t.name: wait_for(lambda t=t: rendezvous(t), timeout=60, what=t.name) for t in targets}
    assert {t.name: t.status()["reachable"] for t in targets} == {
        "pr-2s": "punchable",
        "pr-60s": "punchable",
        "sym-2s": "relayed-only",
        "sym-60s": "relayed-only",
    }
    # Three mapping timeouts pass: a mapping not kept open is gone by now.
    time.sleep(3 * MAPPING_TIMEOUT + 1)
    by_name = {t.name: t for t in targets}
    router = bed.homes["pr"].router
    inner = bed.homes["pr"].host.v4 or ""
    # The kept-alive mapping is in the router's table whenever we look (0.5 s apart,
    # over two timeouts); the other one is gone at some point.
    kept, lapsed = [], []
    for _ in range(4 * MAPPING_TIMEOUT):
        kept.append(mapped(router, inner, 4000, at["pr-2s"]))
        lapsed.append(mapped(router, inner, 4001, at["pr-60s"]))
        time.sleep(0.5)
    assert all(kept) and not all(lapsed), (kept, lapsed)
    outcomes: dict[str, list[bool | None]] = {t.name: [] for t in targets}
    tried = [t for t in targets if t.name != "pr-60s"]
    for _ in range(ROUNDS):
        threads = []
        for t in tried:

            def run(t: Target = t) -> None:
                outcomes[t.name].append(attempt(t.initiator, at[t.name], t.key(), t.relay))

            threads.append(threading.Thread(target=run))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        time.sleep(1.5)
    assert all(len(outcomes[t.name]) == ROUNDS for t in tried), outcomes
    # Kept alive: every attempt reaches the node, punched or relayed.
    assert outcomes["pr-2s"] == [True] * ROUNDS
    assert outcomes["sym-2s"] == [True] * ROUNDS
    # Not kept alive: the symmetric NAT gave the node a new port once its mapping
    # towards the rendezvous node lapsed, so the registration points nowhere and no
    # circuit reaches it.
    assert outcomes["sym-60s"] == [False] * ROUNDS
    # The port-restricted NAT keeps the port when the node's other traffic (its
    # lookups, every 10 s) opens the mapping again, so the node is reachable only while
    # that happens to be recent. Tried at a moment the mapping is gone, it is not.
    pr = by_name["pr-60s"]

    def lapsed_now() -> bool:
        return not mapped(router, inner, 4001, at["pr-60s"])

    gated = None
    deadline = time.monotonic() + 40
    while gated is None and time.monotonic() < deadline:
        gated = attempt(pr.initiator, at[pr.name], pr.key(), False, lapsed_now)
        time.sleep(0.5)
    assert gated is False
