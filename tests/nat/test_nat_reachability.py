"""Players at home (docs/nat.md): the reachability verdict of a node behind each NAT type,
and servers, lists and referees used from behind NAT, on the testbed of tests/kit/netlab.py.

Entry nodes run on e1-e3 (public); a node behind each home router runs with
``--reachability check``. Only the full-cone node is proven public and enters the
entries' routing tables; the port-restricted one is punchable and the symmetric one
relayed-only, and neither is handed out to anyone.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from netlab import Host, NatTestbed, NatType, nat_ruleset, nat_testbed, netlab, play_command
from waiting import ok, wait_for

from fairdht.dht import DHTConfig, DHTNode
from fairdht.dht.punch import PunchProtocol
from fairdht.dht.relay import Circuit, RelayProtocol
from fairdht.dht.storage import MemoryRecordStore
from fairdht.identity import SigningKey, write_key
from fairdht.node.launcher import NodeProcess
from fairdht.referee.codehash import code_hash

ROOT = Path(__file__).resolve().parents[2]
PUBLISH = [sys.executable, str(ROOT / "scripts" / "publish_server.py")]
FAIRDHT_CMD = [sys.executable, "-m", "fairdht"]
NET = "nat"


@dataclass
class Running:
    bed: NatTestbed
    root: Path
    nodes: dict[str, tuple[Host, NodeProcess]]

    def status(self, name: str) -> dict[str, Any]:
        host, node = self.nodes[name]
        doc: dict[str, Any] = host.get_json(node.api_url + "/api/status")
        return doc

    def entry(self, i: int = 0) -> str:
        return self.bed.entries[i].endpoint(4000)


@pytest.fixture(scope="module")
def net(bed: NatTestbed, tmp_path_factory: pytest.TempPathFactory) -> Running:
    root = tmp_path_factory.mktemp("nat")
    e1, e2, e3 = bed.entries[:3]
    nodes: dict[str, tuple[Host, NodeProcess]] = {}
    first = e1.node(root / "e1")
    first.wait_ready()
    nodes["e1"] = (e1, first)
    for host in (e2, e3):
        nodes[host.name] = (host, host.node(root / host.name, bootstrap=[e1.endpoint(4000)]))
    for name in ("fc", "pr", "sym", "cg"):
        host = bed.homes[name].host
        nodes[name] = (
            host,
            host.node(
                root / name,
                bootstrap=[e1.endpoint(4000), e2.endpoint(4000)],
                extra=["--reachability", "check", "--reachability-interval", "60"],
            ),
        )
    for _, node in nodes.values():
        node.wait_ready()
    return Running(bed, root, nodes)


def test_each_nat_type_gets_its_verdict_and_only_a_public_node_enters_tables(
    net: Running,
) -> None:
    def verdict(name: str) -> str:
        doc = net.status(name)
        return "" if doc["reachable"] == "unknown" else str(doc["reachable"])

    got = {
        name: wait_for(lambda n=name: verdict(n), timeout=40, what=f"{name}'s verdict")
        for name in ("fc", "pr", "sym", "cg")
    }
    # Behind two port-preserving NATs (carrier-grade) is punchable too.
    assert got == {"fc": "public", "pr": "punchable", "sym": "relayed-only", "cg": "punchable"}
    fc, pr, sym = (net.status(n) for n in ("fc", "pr", "sym"))
    homes = net.bed.homes
    assert fc["observed"] == f"{homes['fc'].public_ip}:4000"
    assert pr["observed"] == f"{homes['pr'].public_ip}:4000"
    assert sym["observed"] is None and "symmetric" in sym["reachable_reason"]
    # Entries know each other and the proven node; the two hidden nodes are nobody's
    # contact, though both use the network (they have contacts of their own).
    for entry in ("e1", "e2", "e3"):
        wait_for(lambda e=entry: net.status(e)["peers"] == 3, timeout=20, what=f"{entry} peers")
    assert pr["peers"] >= 2 and sym["peers"] >= 2
    # `fairdht status` on the node's own host says the same, and why.
    host, node = net.nodes["pr"]
    text = host.fairdht("status", "--api", node.api_url)
    lines = dict(line.split(" ", 1) for line in text.stdout.splitlines())
    assert lines["reachable"] == "punchable"
    assert "no dial-back arrived" in lines["reachable_reason"]


def publish(host: Host, root: Path, entry: str, name: str, address: str) -> subprocess.Popen[str]:
    key = root / f"{name}.key"
    write_key(key, SigningKey.generate())
    argv = [*PUBLISH, "--key", str(key), "--bootstrap", entry, "--network", NET]
    proc = host.popen([*argv, "--address", address, "--name", name])
    assert proc.stdout is not None
    assert "announced" in proc.stdout.readline()
    return proc


def test_servers_behind_nat_announced_probed_and_listed_from_every_home(net: Running) -> None:
    homes = net.bed.homes
    # A forwarded port on the full-cone home; none on the port-restricted one.
    homes["fc"].forward_port(28785)
    publish(
        homes["fc"].host, net.root, net.entry(0), "nat-forwarded", f"{homes['fc'].public_ip}:28785"
    )
    publish(
        homes["pr"].host, net.root, net.entry(1), "nat-closed", f"{homes['pr'].public_ip}:28786"
    )
    for lister in ("pub", "fc", "pr", "sym", "cg"):
        host = net.bed.entries[3] if lister == "pub" else homes[lister].host
        listed = ok(
            host.fairdht(
                "servers",
                "--bootstrap",
                net.entry(2),
                "--network",
                NET,
                "--json",
                "--data-dir",
                str(net.root / f"list-{lister}"),
            )
        )
        by_name = {s["name"]: s for s in listed["servers"]}
        assert set(by_name) == {"nat-forwarded", "nat-closed"}, lister
        if lister == "pub":
            # From the public internet: the forwarded server answers the probe, the
            # one behind a closed NAT does not (and is marked so).
            assert by_name["nat-forwarded"]["reachable"] is True
            assert by_name["nat-closed"]["reachable"] is False


def test_a_referee_offer_from_one_home_found_from_behind_every_other_nat(net: Running) -> None:
    homes = net.bed.homes
    key = net.root / "referee.key"
    referee = SigningKey.generate()
    write_key(key, referee)
    digest = code_hash(ROOT / "examples" / "arena").hex()
    endpoint = f"{homes['fc'].public_ip}:7100"
    offered = homes["fc"].host.fairdht(
        "referee",
        "offer",
        "--code-hash",
        digest,
        "--game",
        "game-home",
        "--endpoint",
        endpoint,
        "--key",
        str(key),
        "--bootstrap",
        net.entry(0),
        "--once",
        "--json",
    )
    assert offered.returncode == 0, offered.stderr
    players = ",".join(SigningKey.generate().public_key.hex() for _ in range(2))
    for name in ("pr", "sym", "cg"):
        found = ok(
            homes[name].host.fairdht(
                "referees",
                digest,
                "--players",
                players,
                "--match",
                f"home-{name}",
                "--bootstrap",
                net.entry(1),
                "--json",
            )
        )
        offers = {r["referee"]: r for r in found["referees"]}
        assert offers[referee.public_key.hex()]["endpoint"] == endpoint, name


def test_a_node_whose_nat_changes_is_checked_again_and_hidden(nat_ok: None, tmp_path: Path) -> None:
    with netlab("c") as lab:
        bed = nat_testbed(lab, only=("fc",))
        e1, e2 = bed.entries[:2]
        first = e1.node(tmp_path / "e1")
        first.wait_ready()
        second = e2.node(tmp_path / "e2", bootstrap=[e1.endpoint(4000)])
        home = bed.homes["fc"]
        node = home.host.node(
            tmp_path / "fc",
            bootstrap=[e1.endpoint(4000)],
            extra=["--reachability", "check", "--reachability-interval", "5"],
        )
        for started in (second, node):
            started.wait_ready()
        run = Running(bed, tmp_path, {"fc": (home.host, node), "e1": (e1, first)})
        wait_for(lambda: run.status("fc")["reachable"] == "public", timeout=30, what="fc public")
        wait_for(lambda: run.status("e1")["peers"] == 2, timeout=20, what="e1 to admit fc")
        # The router becomes port-restricted (a new box, a firmware update): the next
        # round finds no dial-back arriving and hides the node again.
        router = home.router
        router.sh(["nft", "delete", "table", "ip", "fairnat"])
        lan_if, wan_if = router.interfaces[1], router.interfaces[0]
        router.nft(
            nat_ruleset(NatType.PORT_RESTRICTED, wan_if, lan_if, "10.1.0.0/24", home.public_ip)
        )
        after = wait_for(
            lambda: (doc := run.status("fc"))["reachable"] == "punchable" and doc,
            timeout=30,
            what="fc to be found punchable",
        )
        assert after["observed"] == f"{home.public_ip}:4000"


def punch_from(host: Host, rendezvous: str, target_hex: str) -> tuple[object, bool]:
    """In this process, on ``host``: a node on port 4100 punches towards ``target_hex``
    through ``rendezvous``; the outcome, and whether a ping then crosses the path."""

    async def main() -> tuple[object, bool]:
        node = DHTNode(
            SigningKey.generate(), MemoryRecordStore(), config=DHTConfig(rpc_timeout=0.5)
        )
        node.protocol_class = PunchProtocol
        await node.listen("0.0.0.0", 4100)
        try:
            proto = node.protocol
            assert isinstance(proto, PunchProtocol)
            proto.set_hidden(True)
            ip, port = rendezvous.rsplit(":", 1)
            got = await proto.connect_via((ip, int(port)), bytes.fromhex(target_hex))
            if not isinstance(got, tuple):
                return got, False
            pong = await proto.call_ping(got)
            return got, pong is not None
        finally:
            await node.stop()
            node.store.close()

    return host.call(lambda: asyncio.run(main()))


def test_two_homes_punch_a_direct_path_through_a_rendezvous_but_not_to_a_symmetric_nat(
    net: Running,
) -> None:
    homes = net.bed.homes

    def registered(name: str) -> list[str]:
        doc = net.status(name)
        return list(doc["rendezvous"]) if doc["reachable"] != "unknown" else []

    cg_at = wait_for(lambda: registered("cg"), timeout=40, what="cg's rendezvous")
    sym_at = wait_for(lambda: registered("sym"), timeout=40, what="sym's rendezvous")
    cg_key = net.nodes["cg"][1].info
    sym_key = net.nodes["sym"][1].info
    assert cg_key is not None and sym_key is not None
    # Port-restricted home to carrier-grade NAT: both punch, the path opens both ways.
    got, crossed = punch_from(homes["pr"].host, cg_at[0], cg_key.public_key)
    assert got == (homes["cg"].public_ip, 4000)
    assert crossed
    # To a symmetric NAT the punch goes to a port that is not the one it sends from.
    got, crossed = punch_from(homes["pr"].host, sym_at[0], sym_key.public_key)
    assert got == "no_punch" and not crossed


def in_process_node(key: SigningKey) -> DHTNode:
    """A full node (relay-capable protocol) in this process, not yet listening."""
    node = DHTNode(key, MemoryRecordStore(), config=DHTConfig(rpc_timeout=0.5))
    node.protocol_class = RelayProtocol
    return node


def test_a_node_behind_a_symmetric_nat_is_reached_through_a_relay(net: Running) -> None:
    homes = net.bed.homes
    host, port = net.entry(0).rsplit(":", 1)
    relay = (host, int(port))
    key = SigningKey.generate()
    registered, done = threading.Event(), threading.Event()

    async def target() -> bytes | None:
        node = in_process_node(key)
        await node.listen("0.0.0.0", 4200)
        try:
            proto = node.protocol
            assert isinstance(proto, RelayProtocol)
            proto.set_hidden(True)
            assert await proto.register_at(relay)
            registered.set()
            circuit = await asyncio.wait_for(proto.incoming.get(), 20)
            data = await circuit.receive(5)
            circuit.send(b"echo:" + (data or b""))
            # Stay up until the initiator has read the echo (a thread event: another loop).
            await asyncio.get_running_loop().run_in_executor(None, done.wait, 30)
            return data
        finally:
            await node.stop()

    async def initiator() -> bytes | None:
        node = in_process_node(SigningKey.generate())
        await node.listen("0.0.0.0", 4100)
        try:
            proto = node.protocol
            assert isinstance(proto, RelayProtocol)
            proto.set_hidden(True)
            circuit = await proto.open_relay(relay, key.public_key.raw)
            assert isinstance(circuit, Circuit), circuit
            circuit.send(b"sealed hello")
            return await circuit.receive(5)
        finally:
            await node.stop()

    thread, result, errors = homes["sym"].host.spawn(lambda: asyncio.run(target()))
    try:
        assert registered.wait(20), errors
        answer = homes["pr"].host.call(lambda: asyncio.run(initiator()))
    finally:
        done.set()
        thread.join(30)
    assert errors == []
    assert result == [b"sealed hello"]
    assert answer == b"echo:sealed hello"


def test_players_behind_port_restricted_and_symmetric_nat_play_a_refereed_match(
    net: Running,
) -> None:
    homes = net.bed.homes
    pub = net.bed.entries[3]
    arena = ROOT / "examples" / "arena"
    digest = code_hash(arena).hex()
    ref_key = SigningKey.generate()
    write_key(net.root / "match-ref.key", ref_key)
    players = {name: SigningKey.generate() for name in ("pr", "sym")}
    for name, key in players.items():
        write_key(net.root / f"match-{name}.key", key)
    serve = pub.popen(
        [
            *FAIRDHT_CMD,
            "referee",
            "serve",
            "--bundle",
            str(arena),
            "--trust-code",
            digest,
            "--game",
            "game-home",
            "--key",
            str(net.root / "match-ref.key"),
            "--bootstrap",
            net.entry(0),
            "--listen",
            "0.0.0.0:7000",
            "--tick-ms",
            "50",
            "--matches",
            "1",
            "--json",
            "--data-dir",
            str(net.root / "match-ref"),
        ]
    )
    assert serve.stdout is not None
    started = json.loads(serve.stdout.readline())
    assert started["endpoint"] == pub.endpoint(7000)
    roster = ",".join(k.public_key.hex() for k in players.values())
    plays = [
        homes[name].host.popen(
            play_command(
                match="home-match",
                code_hash=digest,
                referee=ref_key.public_key.hex(),
                roster=roster,
                key=str(net.root / f"match-{name}.key"),
                bootstrap=net.entry(1),
                data_dir=str(net.root / f"match-{name}"),
            )
        )
        for name in players
    ]
    outcomes = []
    for play in plays:
        out, err = play.communicate(timeout=90)
        assert play.returncode == 0, err
        outcomes.append(json.loads(out)["outcome"])
    assert serve.wait(timeout=30) == 0
    assert outcomes[0]["status"] == "completed"
    assert outcomes[0] == outcomes[1]
