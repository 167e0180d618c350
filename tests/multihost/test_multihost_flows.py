"""Every README flow between hosts: network namespaces on one bridge, IPv4 and IPv6-only.

Each host has its own address (198.18.N.10 or 2001:db8:N::10, one /24 or /48 per host
as between real machines, counted as public through FAIRDHT_PUBLIC_NETS). Entry nodes
run on e1 and e2; a full node on n3 joins through both with the default --listen;
everything else is a light client on a host of its own, run as the user would run it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from netlab import Host, NetLab, netlab, netns_unavailable, play_command
from waiting import ok, wait_for

from fairdht.identity import SigningKey, write_key
from fairdht.node.launcher import NodeProcess
from fairdht.referee.codehash import code_hash
from fairdht.trust import TrustStore

ROOT = Path(__file__).resolve().parents[2]
ARENA = ROOT / "examples" / "arena"
PUBLISH = [sys.executable, str(ROOT / "scripts" / "publish_server.py")]
FAIRDHT_CMD = [sys.executable, "-m", "fairdht"]
NET = "mh"
HOSTS = ("e1", "e2", "n3", "pub", "lst", "maint", "ref", "p1", "p2")


def new_key(path: Path) -> SigningKey:
    key = SigningKey.generate()
    write_key(path, key)
    return key


@dataclass
class Net:
    """The running lab of one IP family."""

    lab: NetLab
    family: int
    root: Path
    hosts: dict[str, Host]
    nodes: dict[str, NodeProcess]
    maintainer: SigningKey
    keys: dict[str, SigningKey] = field(default_factory=dict)

    def entry(self, name: str) -> str:
        return self.hosts[name].endpoint(4000, family=self.family)

    def ip(self, name: str) -> str:
        host = self.hosts[name]
        ip = host.v4 if self.family == 4 else host.v6
        assert ip is not None
        return ip

    def addr(self, name: str, port: int) -> str:
        return self.hosts[name].endpoint(port, family=self.family)

    def api(self, node: str, path: str) -> Any:
        """GET ``path`` of a node's API from inside the node's own host."""
        return self.hosts[node].get_json(self.nodes[node].api_url + path)

    def cli(self, host: str, *args: str, timeout: float = 90.0) -> subprocess.CompletedProcess[str]:
        return self.hosts[host].fairdht(*args, timeout=timeout)

    def data(self, host: str) -> str:
        return str(self.root / f"{host}-data")


def _start(lab: NetLab, family: int, root: Path) -> Net:
    seg = lab.segment("wan")
    hosts = {}
    for i, name in enumerate(HOSTS, start=1):
        v4 = f"198.18.{i}.10" if family == 4 else None
        hosts[name] = lab.host(name, seg, v4=v4, v6=f"2001:db8:{i}::10")
    maintainer = new_key(root / "maint.key")
    n3_dir = root / "n3"
    n3_dir.mkdir()
    trust = TrustStore(n3_dir / "trust.sqlite")
    trust.add(NET, "checkpoint", maintainer.public_key.raw)
    net = Net(lab, family, root, hosts, {}, maintainer)
    # Entry nodes have fixed public addresses, declared (docs/nat.md); n3 checks its own.
    public = ["--reachability", "assume-public"]
    e1 = hosts["e1"].node(root / "e1", family=family, extra=public)
    e1.wait_ready()
    e2 = hosts["e2"].node(root / "e2", family=family, bootstrap=[net.entry("e1")], extra=public)
    # n3 leaves --listen to its default: the wildcard of its entry nodes' family.
    n3 = hosts["n3"].node(
        n3_dir,
        default_listen=True,
        bootstrap=[net.entry("e1"), net.entry("e2")],
        extra=["--follow", NET],
    )
    net.nodes = {"e1": e1, "e2": e2, "n3": n3}
    for node in (e2, n3):
        node.wait_ready()
    wait_for(lambda: net.api("n3", "/api/status")["peers"] >= 2, timeout=30, what="n3 to join")
    # n3 enters the entries' routing tables once its dial-backs prove it public.
    for entry in ("e1", "e2"):
        wait_for(
            lambda e=entry: net.api(e, "/api/status")["peers"] >= 2,
            timeout=60,
            what=f"{entry} to admit n3 (proven public)",
        )
    return net


@pytest.fixture(scope="module", params=[4, 6], ids=["ipv4", "ipv6-only"])
def net(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    reason = netns_unavailable()
    if reason is not None:
        pytest.skip(f"multi-host tests need network namespaces: {reason}")
    family: int = request.param
    root = tmp_path_factory.mktemp(f"mh{family}")
    with netlab(f"m{family}") as lab:
        yield _start(lab, family, root)


def test_full_node_joins_through_two_entry_hosts_and_serves_its_api(net: Net) -> None:
    # `fairdht status` run on the node's own host, against its loopback API.
    status = ok(net.cli("n3", "status", "--api", net.nodes["n3"].api_url, "--json"))
    assert status["peers"] >= 2
    wildcard = "0.0.0.0" if net.family == 4 else "::"
    assert status["listen"].rsplit(":", 1)[0].strip("[]") == wildcard
    # The entry hosts learned n3 at its own address, not at a loopback one.
    for entry in ("e1", "e2"):
        assert net.api(entry, "/api/status")["peers"] >= 2


def test_publish_from_one_host_listed_and_probed_from_another(net: Net) -> None:
    pub_key = net.root / "pub.key"
    new_key(pub_key)
    live = net.hosts["pub"].popen(
        [
            *PUBLISH,
            "--key",
            str(pub_key),
            "--bootstrap",
            net.entry("e1"),
            "--network",
            NET,
            "--address",
            net.addr("pub", 28785),
            "--name",
            "mh-live",
            "--players",
            "3",
        ],
    )
    assert live.stdout is not None
    assert "announced" in live.stdout.readline()
    once_key = net.root / "once.key"
    new_key(once_key)
    once = net.hosts["pub"].run(
        [
            *PUBLISH,
            "--key",
            str(once_key),
            "--bootstrap",
            net.entry("e2"),
            "--network",
            NET,
            "--address",
            net.addr("pub", 28786),
            "--name",
            "mh-once",
            "--once",
        ],
    )
    assert once.returncode == 0, once.stderr
    listed = ok(
        net.cli(
            "lst",
            "servers",
            "--bootstrap",
            net.entry("e2"),
            "--network",
            NET,
            "--json",
            "--data-dir",
            net.data("lst"),
        )
    )
    by_name = {s["name"]: s for s in listed["servers"]}
    assert set(by_name) == {"mh-live", "mh-once"}
    assert by_name["mh-live"]["address"] == net.addr("pub", 28785)
    # The live publisher answers the lister's probe across hosts; nothing answers --once.
    assert by_name["mh-live"]["reachable"] is True
    assert by_name["mh-once"]["reachable"] is False
    # The full node on n3 replicates the list and shows it on its own API.
    wait_for(
        lambda: (
            {s["name"] for s in net.api("n3", f"/api/servers?network={NET}")["servers"]}
            >= {"mh-live", "mh-once"}
        ),
        timeout=40,
        what="n3's replica to list both servers",
    )


def publish_once(net: Net, name: str, port: int) -> None:
    """Announce one server from the pub host with a key of its own (``--once``)."""
    key = net.root / f"{name}.key"
    new_key(key)
    argv = ["--key", str(key), "--bootstrap", net.entry("e1"), "--network", NET]
    argv += ["--address", net.addr("pub", port), "--name", name, "--once"]
    done = net.hosts["pub"].run([*PUBLISH, *argv])
    assert done.returncode == 0, done.stderr


def listed_on_n3(net: Net) -> set[str]:
    return {s["name"] for s in net.api("n3", f"/api/servers?network={NET}")["servers"]}


def test_checkpoint_and_rollback_from_a_maintainer_host(net: Net) -> None:
    for i in (1, 2):
        publish_once(net, f"mh-ck-{i}", 30000 + i)
    wait_for(lambda: {"mh-ck-1", "mh-ck-2"} <= listed_on_n3(net), timeout=40, what="n3's list")
    maint = net.data("maint")
    trusted = net.cli(
        "maint",
        "trust",
        "add",
        net.maintainer.public_key.hex(),
        "--network",
        NET,
        "--role",
        "checkpoint",
        "--data-dir",
        maint,
    )
    assert trusted.returncode == 0, trusted.stderr
    signed = ok(
        net.cli(
            "maint",
            "checkpoint",
            "sign",
            "--key",
            str(net.root / "maint.key"),
            "--network",
            NET,
            "--bootstrap",
            net.entry("e1"),
            "--data-dir",
            maint,
            "--json",
        )
    )
    assert signed["signatures"] >= signed["threshold"] == 1
    members = signed["count"]
    assert members >= 2
    # A flood after the checkpoint, then the maintainer rolls the network back to it.
    publish_once(net, "mh-flood", 40000)
    wait_for(lambda: "mh-flood" in listed_on_n3(net), timeout=40, what="n3 to list the flood")
    rolled = ok(
        net.cli(
            "maint",
            "rollback",
            "--to",
            signed["root"],
            "--key",
            str(net.root / "maint.key"),
            "--network",
            NET,
            "--bootstrap",
            net.entry("e2"),
            "--data-dir",
            maint,
            "--json",
        )
    )
    assert rolled["kind"] == "rollback"
    # Every full node following the network applies it: n3 quarantines the flood.
    after = wait_for(
        lambda: (doc := net.api("n3", f"/api/servers?network={NET}"))["quarantined"] >= 1 and doc,
        timeout=40,
        what="n3 to apply the rollback",
    )
    names = {s["name"] for s in after["servers"]}
    assert "mh-flood" not in names
    assert after["state_root"] == signed["root"]


def test_karma_vote_and_score_across_hosts(net: Net) -> None:
    voter = net.root / "voter.key"
    new_key(voter)
    subject = new_key(net.root / "subject.key").public_key.hex()
    vote = net.cli(
        "lst",
        "karma",
        "vote",
        subject,
        "connected_ok",
        "--context",
        "mh-match",
        "--key",
        str(voter),
        "--bootstrap",
        net.entry("e1"),
        "--json",
    )
    assert vote.returncode == 0, vote.stderr
    shown = ok(
        net.cli(
            "p1",
            "karma",
            "show",
            subject,
            "--explain",
            "--json",
            "--key",
            str(voter),
            "--bootstrap",
            net.entry("e2"),
            "--data-dir",
            net.data("p1-karma"),
        )
    )
    assert shown["score"] > 0
    assert [v["action"] for v in shown["votes"]] == ["connected_ok"]


def test_content_publish_and_fetch_across_hosts(net: Net) -> None:
    dev = new_key(net.root / "dev.key")
    digest = code_hash(ARENA).hex()
    published = ok(
        net.cli(
            "pub",
            "content",
            "publish",
            str(ARENA),
            "--key",
            str(net.root / "dev.key"),
            "--network",
            NET,
            "--bootstrap",
            net.entry("e1"),
            "--json",
        )
    )
    assert published["code_hash"] == digest
    fetcher = net.data("lst-content")
    trusted = net.cli(
        "lst",
        "trust",
        "add",
        dev.public_key.hex(),
        "--network",
        NET,
        "--role",
        "content",
        "--data-dir",
        fetcher,
    )
    assert trusted.returncode == 0, trusted.stderr
    out = net.root / f"fetched{net.family}"
    fetched = ok(
        net.cli(
            "lst",
            "content",
            "fetch",
            digest,
            "--out",
            str(out),
            "--network",
            NET,
            "--data-dir",
            fetcher,
            "--bootstrap",
            net.entry("e2"),
            "--json",
        )
    )
    assert fetched["code_hash"] == digest
    assert code_hash(out).hex() == digest


def test_referee_offer_found_by_code_hash_from_another_host(net: Net) -> None:
    referee = new_key(net.root / "offerer.key")
    digest = code_hash(ARENA).hex()
    endpoint = net.addr("ref", 7100)
    offered = net.cli(
        "ref",
        "referee",
        "offer",
        "--code-hash",
        digest,
        "--game",
        "game-z",
        "--endpoint",
        endpoint,
        "--key",
        str(net.root / "offerer.key"),
        "--bootstrap",
        net.entry("e1"),
        "--once",
        "--json",
    )
    assert offered.returncode == 0, offered.stderr
    players = [new_key(net.root / f"q{i}.key").public_key.hex() for i in range(2)]
    found = ok(
        net.cli(
            "lst",
            "referees",
            digest,
            "--players",
            ",".join(players),
            "--match",
            "mh-q",
            "--bootstrap",
            net.entry("e2"),
            "--json",
        )
    )
    offers = {r["referee"]: r for r in found["referees"]}
    assert offers[referee.public_key.hex()]["endpoint"] == endpoint


def test_refereed_match_with_referee_and_players_on_three_hosts(net: Net) -> None:
    ref_key = new_key(net.root / "ref.key")
    players = [new_key(net.root / f"p{i}.key") for i in (1, 2)]
    digest = code_hash(ARENA).hex()
    wildcard = "0.0.0.0:7000" if net.family == 4 else "[::]:7000"
    serve = net.hosts["ref"].popen(
        [
            *FAIRDHT_CMD,
            "referee",
            "serve",
            "--bundle",
            str(ARENA),
            "--trust-code",
            digest,
            "--game",
            "game-b",
            "--key",
            str(net.root / "ref.key"),
            "--bootstrap",
            net.entry("e1"),
            "--listen",
            wildcard,
            "--tick-ms",
            "50",
            "--matches",
            "1",
            "--json",
            "--data-dir",
            net.data("ref"),
        ]
    )
    assert serve.stdout is not None
    started = json.loads(serve.stdout.readline())
    # Listening on the wildcard, it advertises the address its host uses towards the
    # entry node: the one players on other hosts reach.
    assert started["endpoint"] == net.addr("ref", 7000)
    roster = ",".join(p.public_key.hex() for p in players)
    plays = [
        net.hosts[f"p{i}"].popen(
            play_command(
                match=f"mh-match-{net.family}",
                code_hash=digest,
                referee=ref_key.public_key.hex(),
                roster=roster,
                key=str(net.root / f"p{i}.key"),
                bootstrap=net.entry("e2"),
                data_dir=net.data(f"p{i}"),
            )
        )
        for i in (1, 2)
    ]
    docs = []
    for play in plays:
        out, err = play.communicate(timeout=90)
        assert play.returncode == 0, err
        docs.append(json.loads(out))
    finished = json.loads(serve.stdout.readline())
    assert serve.wait(timeout=30) == 0
    outcome = docs[0]["outcome"]
    assert outcome["status"] == "completed"
    assert outcome["referee"] == ref_key.public_key.hex()
    assert docs[1]["outcome"] == outcome
    assert {v["action"] for v in finished["votes"]} == {"session_completed"}


@pytest.mark.parametrize("family", [4, 6], ids=["ipv4", "ipv6-only"])
def test_entry_hosts_restart_and_the_network_rejoins(
    family: int, tmp_path: Path, netns_ok: None
) -> None:
    with netlab(f"r{family}") as lab:
        seg = lab.segment("wan")
        hosts = {
            name: lab.host(
                name, seg, v4=f"198.18.{i}.10" if family == 4 else None, v6=f"2001:db8:{i}::10"
            )
            for i, name in enumerate(("e1", "e2", "n3", "lst"), start=1)
        }

        def entry(name: str) -> str:
            return hosts[name].endpoint(4000, family=family)

        e1 = hosts["e1"].node(tmp_path / "e1", family=family)
        e1.wait_ready()
        e2 = hosts["e2"].node(tmp_path / "e2", family=family, bootstrap=[entry("e1")])
        n3 = hosts["n3"].node(tmp_path / "n3", family=family, bootstrap=[entry("e1"), entry("e2")])
        for node in (e2, n3):
            node.wait_ready()

        def peers(host: str, node: NodeProcess) -> int:
            count: int = hosts[host].get_json(node.api_url + "/api/status")["peers"]
            return count

        wait_for(lambda: peers("e1", e1) >= 2, timeout=30, what="e1 to know both peers")
        wait_for(lambda: peers("e2", e2) >= 2, timeout=30, what="e2 to know both peers")
        for node in (e1, e2):
            assert node.terminate() == 0  # a clean stop saves peers.json
        # Both entry hosts come back on the same addresses, e1 with no --bootstrap at
        # all: saved peers bring them back into the network.
        e1b = hosts["e1"].node(tmp_path / "e1", family=family)
        e2b = hosts["e2"].node(tmp_path / "e2", family=family, bootstrap=[entry("e1")])
        for node in (e1b, e2b):
            node.wait_ready()
        wait_for(lambda: peers("e1", e1b) >= 2, timeout=40, what="e1 to rejoin")
        wait_for(lambda: peers("e2", e2b) >= 2, timeout=40, what="e2 to rejoin")
        # A light client on a fourth host reads the network through the restarted entry.
        listed = hosts["lst"].fairdht(
            "servers",
            "--bootstrap",
            entry("e1"),
            "--network",
            "demo",
            "--json",
            "--data-dir",
            str(tmp_path / "lst"),
        )
        assert listed.returncode == 0, listed.stderr
