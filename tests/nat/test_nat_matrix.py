"""The NAT matrix (docs/nat.md): a player reaches a node behind every NAT type, from
behind every NAT type, the way a player would (direct, then a punch through the node's
rendezvous node, then a relay circuit), and survives a relay that dies mid-circuit.

The slow campaign (``make test-slow``) runs 20 ``fairdht node`` processes: five public
entry nodes, three checked nodes on public hosts and three behind each home router
(full cone, port-restricted, symmetric, carrier-grade NAT); it checks every verdict,
publishes a server from each home and lists them from everywhere, tries every pair of
NAT types (a pair of one type is two players behind the same NAT: hairpinning), and
kills relays mid-circuit. The quick variant in the normal suite tries two pairs and
the relay failure.

What each pair gets follows from RFC 4787: a node proven public is dialled directly; a
punch works when one side filters independently of the endpoint (public, full cone) or
both keep one mapping for every destination (port-restricted, carrier-grade NAT, RFC
5128 §3.3); a symmetric NAT against either of those needs a relay. The testbed's routers
do not hairpin (RFC 4787 REQ-9 asks them to; many home routers do not), so two players
behind one NAT meet through a relay, and a public-verdict node behind a full cone,
which registers at no relay, is not reached from its own home network.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from netlab import Host, NatTestbed, nat_testbed, netlab
from waiting import ok, wait_for

from fairdht.dht import DHTConfig, DHTNode
from fairdht.dht.relay import Circuit, RelayProtocol
from fairdht.dht.storage import MemoryRecordStore
from fairdht.identity import SigningKey, write_key
from fairdht.node.launcher import NodeProcess

ROOT = Path(__file__).resolve().parents[2]
PUBLISH = [sys.executable, str(ROOT / "scripts" / "publish_server.py")]
NET = "matrix"
CHECK = ["--reachability", "check", "--reachability-interval", "120"]
Address = tuple[str, int]
# The verdict each kind of host gets.
VERDICT = {
    "public": "public",
    "fc": "public",
    "pr": "punchable",
    "cg": "punchable",
    "sym": "relayed-only",
}


def expected_path(src: str, dst: str) -> str:
    """How a player behind ``src`` reaches a node behind ``dst`` (RFC 4787; see above)."""
    if src == dst and src != "public":
        return "failed" if VERDICT[dst] == "public" else "relayed"
    if VERDICT[dst] == "public":
        return "direct"
    if src in ("public", "fc") or (src in ("pr", "cg") and dst in ("pr", "cg")):
        return "punched"
    return "relayed"


def parse(addr: str) -> Address:
    ip, port = addr.rsplit(":", 1)
    return ip, int(port)


@dataclass
class Net:
    """Running nodes by name: (host, process)."""

    bed: NatTestbed
    root: Path
    nodes: dict[str, tuple[Host, NodeProcess]]

    def status(self, name: str) -> dict[str, Any]:
        host, node = self.nodes[name]
        doc: dict[str, Any] = host.get_json(node.api_url + "/api/status")
        return doc

    def key(self, name: str) -> bytes:
        info = self.nodes[name][1].info
        assert info is not None
        return bytes.fromhex(info.public_key)

    def entry(self, i: int) -> str:
        return self.bed.entries[i].endpoint(4000)

    def settled(self, name: str) -> dict[str, Any] | None:
        """The node's status once its verdict is decided (and, unless public, it is
        registered at a rendezvous node); None before."""
        doc = self.status(name)
        if doc["reachable"] == "unknown":
            return None
        if doc["reachable"] != "public" and not doc["rendezvous"]:
            return None
        return doc


def start(
    bed: NatTestbed,
    root: Path,
    *,
    entries: int,
    checked: Sequence[tuple[str, Host, int]],
) -> Net:
    """Entry nodes on the first ``entries`` public hosts (public by declaration), and a
    node with ``--reachability check`` for each (name, host, port) of ``checked``."""
    nodes: dict[str, tuple[Host, NodeProcess]] = {}
    first = bed.entries[0].node(root / "e1")
    first.wait_ready()
    nodes["e1"] = (bed.entries[0], first)
    boot = [bed.entries[0].endpoint(4000)]
    for host in bed.entries[1:entries]:
        nodes[host.name] = (host, host.node(root / host.name, bootstrap=boot))
    boot = [h.endpoint(4000) for h in bed.entries[:2]]
    for name, host, port in checked:
        node = host.node(root / name, port=port, bootstrap=boot, extra=CHECK)
        nodes[name] = (host, node)
    for _, node in nodes.values():
        node.wait_ready()
    return Net(bed, root, nodes)


def in_process(host: Host, fn: Callable[[RelayProtocol], Any]) -> Any:
    """Run ``fn(protocol)`` on a fresh node (a player's, hidden) on ``host``."""

    async def main() -> Any:
        node = DHTNode(
            SigningKey.generate(), MemoryRecordStore(), config=DHTConfig(rpc_timeout=0.5)
        )
        node.protocol_class = RelayProtocol
        await node.listen("0.0.0.0", 0)
        try:
            proto = node.protocol
            assert isinstance(proto, RelayProtocol)
            proto.set_hidden(True)
            return await fn(proto)
        finally:
            await node.stop()

    return host.call(lambda: asyncio.run(main()))


def reach(initiator: Host, doc: dict[str, Any], key: bytes) -> tuple[str, str]:
    """How a player on ``initiator`` reaches the node of status ``doc`` and ``key``:
    (direct | punched | relayed | failed, why)."""

    async def player(proto: RelayProtocol) -> tuple[str, str]:
        why = []
        if doc["observed"] is not None:
            if await proto.call_ping(parse(doc["observed"])) is not None:
                return "direct", ""
            why.append("direct: no answer")
        for at in doc["rendezvous"]:
            got = await proto.connect_via(parse(at), key)
            if isinstance(got, tuple) and await proto.call_ping(got) is not None:
                return "punched", ""
            why.append(f"punch via {at}: {got}")
            if got == "no_punch":
                break  # the NATs stopped it: another rendezvous node won't help
        for at in doc["rendezvous"]:
            circuit = await proto.open_relay(parse(at), key)
            if isinstance(circuit, Circuit):
                return "relayed", ""
            why.append(f"relay via {at}: {circuit}")
        if not doc["rendezvous"]:
            why.append("no rendezvous node")
        return "failed", "; ".join(why)

    result: tuple[str, str] = in_process(initiator, player)
    return result


async def relayed_echo(proto: RelayProtocol, relays: Sequence[Address], key: bytes) -> str:
    """Open a circuit to ``key`` through the first relay that carries an echo; the relay
    used, or one sentence saying that none did and why."""
    why = []
    for relay in relays:
        circuit = await proto.open_relay(relay, key)
        if not isinstance(circuit, Circuit):
            why.append(f"{relay[0]}:{relay[1]} {circuit}")
            continue
        circuit.send(b"ping")
        if await circuit.receive(2) == b"echo:ping":
            return f"{relay[0]}:{relay[1]}"
        why.append(f"{relay[0]}:{relay[1]} carried no echo")
    return "no relay reached the peer: " + ", ".join(why)


def relay_failover(
    target: Host, initiator: Host, relays: Sequence[tuple[str, NodeProcess]]
) -> None:
    """A node behind ``target``'s NAT registered at two relays; a player on
    ``initiator`` talks to it through the first; the relay dies mid-circuit: the
    player goes on through the second; both dead: one clear sentence."""
    addrs = [parse(endpoint) for endpoint, _ in relays]
    key = SigningKey.generate()
    registered, done = threading.Event(), threading.Event()

    async def serve() -> int:
        node = DHTNode(key, MemoryRecordStore(), config=DHTConfig(rpc_timeout=0.5))
        node.protocol_class = RelayProtocol
        await node.listen("0.0.0.0", 4300)
        echoed = 0
        try:
            proto = node.protocol
            assert isinstance(proto, RelayProtocol)
            proto.set_hidden(True)
            assert all([await proto.register_at(a) for a in addrs])
            registered.set()

            async def echo(circuit: Circuit) -> None:
                nonlocal echoed
                while (data := await circuit.receive(30)) is not None:
                    circuit.send(b"echo:" + data)
                    echoed += 1

            tasks = []
            loop = asyncio.get_running_loop()
            waiting = loop.run_in_executor(None, done.wait, 90)
            while not done.is_set():
                get = asyncio.ensure_future(proto.incoming.get())
                finished, _ = await asyncio.wait({get, waiting}, return_when="FIRST_COMPLETED")
                if get in finished:
                    tasks.append(asyncio.create_task(echo(get.result())))
                else:
                    get.cancel()
            for task in tasks:
                task.cancel()
            return echoed
        finally:
            await node.stop()

    first, second = relays

    async def player(proto: RelayProtocol) -> list[Any]:
        seen: list[Any] = []
        circuit = await proto.open_relay(addrs[0], key.public_key.raw)
        assert isinstance(circuit, Circuit), circuit
        circuit.send(b"one")
        seen.append(await circuit.receive(2))
        first[1].kill()  # the relay dies mid-circuit
        circuit.send(b"two")
        seen.append(await circuit.receive(2))
        seen.append(await relayed_echo(proto, addrs, key.public_key.raw))
        second[1].kill()
        seen.append(await relayed_echo(proto, addrs, key.public_key.raw))
        return seen

    thread, result, errors = target.spawn(lambda: asyncio.run(serve()))
    try:
        assert registered.wait(30), errors
        seen = in_process(initiator, player)
    finally:
        done.set()
        thread.join(30)
    assert errors == []
    one, two, fallback, none_left = seen
    assert one == b"echo:one"
    assert two is None  # nothing crosses a dead relay
    assert fallback == second[0]
    assert none_left == (
        f"no relay reached the peer: {first[0]} relay_silent, {second[0]} relay_silent"
    )
    assert result and result[0] >= 2


def try_pairs(
    net: Net, targets: dict[str, str], players: dict[str, Host], pairs: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], tuple[str, str]]:
    """Each (initiator kind, target kind): how the player reached the target node."""
    docs = {kind: net.status(name) for kind, name in targets.items()}
    return {(src, dst): reach(players[src], docs[dst], net.key(targets[dst])) for src, dst in pairs}


# -- the quick variant (normal suite) ---------------------------------------------------------


@pytest.fixture(scope="module")
def quick(bed: NatTestbed, tmp_path_factory: pytest.TempPathFactory) -> Net:
    root = tmp_path_factory.mktemp("matrix")
    homes = bed.homes
    net = start(
        bed,
        root,
        entries=3,
        checked=[(k, homes[k].host, 4000) for k in ("pr", "sym", "cg")],
    )
    # Two relays on the public host "pub" that no other node knows (no node registers
    # there by itself), for the relay failure.
    pub = bed.entries[3]
    for i, port in enumerate((4000, 4001), start=1):
        relay = pub.node(root / f"relay{i}", port=port)
        relay.wait_ready()
        net.nodes[f"relay{i}"] = (pub, relay)
    return net


def test_two_nat_pairs_connect_the_way_a_player_would(quick: Net) -> None:
    for name in ("pr", "sym", "cg"):
        doc = wait_for(lambda n=name: quick.settled(n), timeout=60, what=f"{name} settled")
        assert doc["reachable"] == VERDICT[name]
    homes = quick.bed.homes
    got = try_pairs(
        quick,
        {k: k for k in ("pr", "sym")},
        {"cg": homes["cg"].host, "pr": homes["pr"].host},
        [("cg", "pr"), ("pr", "sym")],
    )
    assert got == {("cg", "pr"): ("punched", ""), ("pr", "sym"): ("relayed", "")}


def test_a_relay_dying_mid_circuit_falls_back_to_the_next_or_says_why(quick: Net) -> None:
    homes = quick.bed.homes
    pub = quick.bed.entries[3]
    relays = [(pub.endpoint(p), quick.nodes[f"relay{i}"][1]) for i, p in ((1, 4000), (2, 4001))]
    relay_failover(homes["sym"].host, homes["pr"].host, relays)


# -- the slow campaign (make test-slow) -------------------------------------------------------

KINDS = ("public", "fc", "pr", "sym", "cg")


@pytest.mark.slow
def test_every_nat_pair_with_twenty_nodes(nat_ok: None, tmp_path: Path) -> None:
    with netlab("mx") as lab:
        # Long mappings: the testbed's full cone refreshes its map only on a new flow's
        # first packet (docs/nat.md, "Keep-alives"), and this campaign runs for minutes.
        bed = nat_testbed(
            lab, entries=5, publics=("p1", "p2", "p3"), cgnat=True, mapping_timeout=3600
        )
        homes = bed.homes
        checked = [(f"p{i}", bed.entries[4 + i], 4000) for i in (1, 2, 3)]
        for kind in ("fc", "pr", "sym", "cg"):
            checked += [(f"{kind}{i}", homes[kind].host, 4000 + i) for i in range(3)]
        net = start(bed, tmp_path, entries=5, checked=checked)
        assert len(net.nodes) >= 20
        # Every verdict, and only proven nodes (entries, public hosts, full cone) in tables.
        for name, _, _ in checked:
            doc = wait_for(lambda n=name: net.settled(n), timeout=90, what=f"{name} settled")
            kind = "public" if name in ("p1", "p2", "p3") else name[:-1]
            assert doc["reachable"] == VERDICT[kind], (name, doc["reachable_reason"])
        # A server announced from each home, listed from every home and the public side.
        for i, kind in enumerate(("fc", "pr", "sym", "cg")):
            key = tmp_path / f"srv-{kind}.key"
            write_key(key, SigningKey.generate())
            proc = homes[kind].host.popen(
                [
                    *PUBLISH,
                    "--key",
                    str(key),
                    "--bootstrap",
                    net.entry(i % 5),
                    "--network",
                    NET,
                    "--address",
                    f"{homes[kind].public_ip}:{28700 + i}",
                    "--name",
                    f"from-{kind}",
                ]
            )
            assert proc.stdout is not None
            assert "announced" in proc.stdout.readline()
        for lister in KINDS:
            host = bed.entries[6] if lister == "public" else homes[lister].host
            listed = ok(
                host.fairdht(
                    "servers",
                    "--bootstrap",
                    net.entry(4),
                    "--network",
                    NET,
                    "--json",
                    "--data-dir",
                    str(tmp_path / f"list-{lister}"),
                )
            )
            names = {s["name"] for s in listed["servers"]}
            assert names == {f"from-{k}" for k in ("fc", "pr", "sym", "cg")}, lister
        # Every pair of NAT types, the way a player connects.
        targets = {"public": "p1", **{k: f"{k}0" for k in ("fc", "pr", "sym", "cg")}}
        players = {
            "public": bed.entries[5],
            **{k: homes[k].host for k in ("fc", "pr", "sym", "cg")},
        }
        pairs = [(s, d) for s in KINDS for d in KINDS]
        got = try_pairs(net, targets, players, pairs)
        paths = {pair: path for pair, (path, _) in got.items()}
        assert paths == {(s, d): expected_path(s, d) for s, d in pairs}, got
        # The full-cone node reached from its own home: why, in one line.
        assert "no rendezvous node" in got[("fc", "fc")][1]
        # Relays die mid-circuit (two entries that are nobody's bootstrap).
        relays = [(net.entry(i), net.nodes[f"e{i + 1}"][1]) for i in (3, 4)]
        relay_failover(homes["sym"].host, homes["pr"].host, relays)
