"""Matches over QUIC across NATs (docs/nat.md, "Session transport"), on the testbed of
tests/kit/netlab.py: a referee behind a symmetric NAT hosts players behind a full-cone
NAT and two behind one port-restricted NAT; a player behind the referee's own NAT
reaches it without hairpinning; behind NATs that forget a mapping after 2 s,
keep-alives hold a session open through a long wait; a relay that dies mid-match is
replaced by the next one.

Every participant runs in this process on a thread inside its host's namespace, so its
sockets are that host's; the entry nodes (and relays) are real ``fairdht node`` processes.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from netlab import Home, Host, NatType, NetLab, netlab, play_command

from fairdht.app.play import PlayResult, play_match
from fairdht.app.referee_service import RefereeService
from fairdht.dht import DHTConfig, DHTNode
from fairdht.dht.relay import RelayProtocol
from fairdht.dht.rpc import Address
from fairdht.dht.storage import MemoryRecordStore
from fairdht.identity import SigningKey, write_key
from fairdht.node.launcher import NodeProcess
from fairdht.records.envelope import Record
from fairdht.records.kinds.outcome import MatchOutcome
from fairdht.referee.codehash import code_hash

ROOT = Path(__file__).resolve().parents[2]
ARENA = ROOT / "examples" / "arena"
NET = "nat"
PORT = 4000
FAIRDHT_CMD = [sys.executable, "-m", "fairdht"]


@dataclass
class Lab:
    lab: NetLab
    entries: tuple[Host, ...]
    nodes: tuple[NodeProcess, ...]
    homes: dict[str, Home]

    def entry(self, i: int) -> Address:
        return (self.entries[i].v4 or "", PORT)


@pytest.fixture(scope="module")
def lab(nat_ok: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """Entries e1-e3 (DHT and relays); homes fc, pr (two hosts), sym; and two
    port-restricted homes whose NAT forgets a UDP mapping after 2 s."""
    root = tmp_path_factory.mktemp("natmatch")
    with netlab("q") as lab:
        wan = lab.segment("wan")
        entries = tuple(lab.host(f"e{i}", wan, v4=f"198.18.{i}.10") for i in (1, 2, 3))
        homes = {
            "fc": lab.home("fc", 1, NatType.FULL_CONE, wan, wan_ip="198.18.201.1"),
            "pr": lab.home("pr", 2, NatType.PORT_RESTRICTED, wan, wan_ip="198.18.202.1", hosts=2),
            "sym": lab.home("sym", 3, NatType.SYMMETRIC, wan, wan_ip="198.18.203.1"),
            "ka": lab.home(
                "ka", 5, NatType.PORT_RESTRICTED, wan, wan_ip="198.18.205.1", mapping_timeout=2
            ),
            "kb": lab.home(
                "kb", 6, NatType.PORT_RESTRICTED, wan, wan_ip="198.18.206.1", mapping_timeout=2
            ),
        }
        first = entries[0].node(root / "e1")
        first.wait_ready()
        others = [h.node(root / h.name, bootstrap=[entries[0].endpoint(PORT)]) for h in entries[1:]]
        for node in others:
            node.wait_ready()
        yield Lab(lab, entries, (first, *others), homes)


def hidden_node(key: SigningKey) -> DHTNode:
    """A node behind NAT: serves (punches and circuits reach it) but is never handed out."""
    node = DHTNode(key, MemoryRecordStore(), config=DHTConfig(rpc_timeout=0.5))
    node.protocol_class = RelayProtocol
    return node


async def joined(key: SigningKey, entries: list[Address]) -> DHTNode:
    node = hidden_node(key)
    await node.listen("0.0.0.0", PORT)
    proto = node.protocol
    assert isinstance(proto, RelayProtocol)
    proto.set_hidden(True)
    await node.bootstrap(entries)
    return node


@dataclass
class Referee:
    ready: threading.Event
    playing: threading.Event
    done: threading.Event
    out: dict[str, Any]
    thread: threading.Thread
    errors: list[BaseException]


def start_referee(
    host: Host,
    key: SigningKey,
    entries: list[Address],
    via: tuple[Address, ...],
    *,
    keepalive: float | None = None,
    renew: float | None = None,
) -> Referee:
    """A referee on ``host`` offering the arena through ``via`` until ``done`` is set."""
    ready, playing, done = threading.Event(), threading.Event(), threading.Event()
    out: dict[str, Any] = {}

    async def watch(service: RefereeService) -> None:
        for _ in range(2400):  # 2 minutes at most
            if any(s.host is not None and s.host.all_joined for s in service.matches.values()):
                playing.set()
                return
            await asyncio.sleep(0.05)

    async def main() -> None:
        node = await joined(key, entries)
        service = RefereeService(
            key,
            node,
            network=NET,
            bundle_dir=ARENA,
            code_hash=code_hash(ARENA),
            game="game-referee",
            capacity=2,
            tick_ms=50,
            via=via,
            keepalive=keepalive,
            renew_every=renew,
            attest_wait=20.0,
        )
        try:
            await service.start()
            assert service.offer is not None
            out["endpoint"] = service.offer.endpoint
            ready.set()
            watcher = asyncio.create_task(watch(service))
            served = await asyncio.wait_for(service.finished.get(), 120)
            watcher.cancel()
            out["outcome"] = served.outcome
            assert service.quic is not None
            out["metrics"] = node.metrics.snapshot()
            await asyncio.get_running_loop().run_in_executor(None, done.wait, 60)
        finally:
            ready.set()
            await service.stop()
            await node.stop()

    thread, _, errors = host.spawn(lambda: asyncio.run(main()))
    return Referee(ready, playing, done, out, thread, errors)


def play_on(
    host: Host,
    key: SigningKey,
    entries: list[Address],
    referee: bytes,
    roster: tuple[bytes, ...],
    match: str,
    *,
    delay: float = 0.0,
    keepalive: float | None = None,
    duration_ms: int = 1500,
) -> tuple[threading.Thread, list[tuple[PlayResult, dict[str, int]]], list[BaseException]]:
    """One player on ``host`` (after ``delay`` s): its result and its node's counters."""

    async def main() -> tuple[PlayResult, dict[str, int]]:
        await asyncio.sleep(delay)
        node = await joined(key, entries)
        try:
            result = await play_match(
                node,
                key,
                network=NET,
                match_id=match,
                code_hash=code_hash(ARENA),
                referee=referee,
                players=roster,
                map_name="arena",
                mode="tag",
                settings={"seed": match, "duration_ms": duration_ms},
                keepalive=keepalive,
            )
            return result, node.metrics.snapshot()
        finally:
            await node.stop()

    return host.spawn(lambda: asyncio.run(main()))


def run_match(
    lab: Lab,
    referee_host: Host,
    player_hosts: dict[str, Host],
    match: str,
    *,
    via: tuple[Address, ...],
    delays: dict[str, float] | None = None,
    keepalive: float | None = None,
    renew: float | None = None,
    during: Any = None,
    duration_ms: int = 1500,
) -> tuple[dict[str, Any], dict[str, tuple[PlayResult, dict[str, int]]]]:
    entries = [lab.entry(0), lab.entry(1)]
    ref_key = SigningKey.generate()
    keys = {name: SigningKey.generate() for name in player_hosts}
    roster = tuple(sorted(k.public_key.raw for k in keys.values()))
    ref = start_referee(referee_host, ref_key, entries, via, keepalive=keepalive, renew=renew)
    try:
        assert ref.ready.wait(60), ref.errors
        assert "endpoint" in ref.out, ref.errors
        players = {
            name: play_on(
                host,
                keys[name],
                entries,
                ref_key.public_key.raw,
                roster,
                match,
                delay=(delays or {}).get(name, 0.0),
                keepalive=keepalive,
                duration_ms=duration_ms,
            )
            for name, host in player_hosts.items()
        }
        if during is not None:
            assert ref.playing.wait(90), ref.errors
            during()
        results = {}
        for name, (thread, result, errors) in players.items():
            thread.join(150)
            assert errors == [], (name, errors)
            results[name] = result[0]
    finally:
        ref.done.set()
        ref.thread.join(60)
    assert ref.errors == []
    return ref.out, results


def completed(outcome: Record | None, roster: int) -> MatchOutcome:
    assert outcome is not None
    body = outcome.body_as(MatchOutcome)
    assert body.status == "completed", body.detail
    assert len(body.players) == roster
    assert all(body.finished), body.finished
    return body


def test_a_referee_behind_a_symmetric_nat_hosts_players_behind_two_other_nats(lab: Lab) -> None:
    homes = lab.homes
    players = {
        "fc": homes["fc"].hosts[0],
        "pr0": homes["pr"].hosts[0],
        "pr1": homes["pr"].hosts[1],
    }
    offered, results = run_match(
        lab, homes["sym"].host, players, "sym-hosts", via=(lab.entry(0), lab.entry(1))
    )
    # The offer names the relays, never the referee's (unreachable) address.
    assert offered["endpoint"] == "via 198.18.1.10:4000 198.18.2.10:4000"
    completed(offered["outcome"], 3)
    for result, _ in results.values():
        assert result.outcome is not None
        assert result.outcome.raw == offered["outcome"].raw
        assert result.referee_vote == "referee_fair"
    # A full-cone home lets the symmetric NAT's punch in; from behind the port-restricted
    # NAT (both players, one public address) no punch passes, and a relay carries it.
    paths = {name: r.path for name, (r, _) in results.items()}
    assert paths == {"fc": "punched", "pr0": "relayed", "pr1": "relayed"}
    relayed = [
        m.get("quic.bytes_in.relayed", 0) + m.get("quic.bytes_out.relayed", 0)
        for name, (_, m) in results.items()
        if name != "fc"
    ]
    assert all(b > 10_000 for b in relayed), relayed
    opened = {name: round(r.connect_seconds, 3) for name, (r, _) in results.items()}
    print(f"\nrelayed bytes per player: {relayed}; seconds to connect: {opened}")


def late_join(lab: Lab, match: str, keepalive: float) -> tuple[PlayResult, dict[str, int]]:
    """A referee and an early player behind port-restricted NATs that forget a mapping
    after 2 s, punched to each other; the second player joins 6 s late (three mapping
    lifetimes in which the early session carries nothing but keep-alives; the
    referee's registration renewals keep its rendezvous reachable). Without keep-alives
    both NATs drop the welcome: the session has to find a relay, if it can, in time."""
    homes = lab.homes
    offered, results = run_match(
        lab,
        homes["ka"].host,
        {"early": homes["kb"].host, "late": homes["fc"].host},
        match,
        via=(lab.entry(0),),
        delays={"late": 6.0},
        keepalive=keepalive,
        renew=0.5,
    )
    completed(offered["outcome"], 2)
    early, counters = results["early"]
    assert early.path == "punched"
    assert early.outcome is not None and early.outcome.raw == offered["outcome"].raw
    return early, counters


def test_a_player_behind_the_referees_own_nat_reaches_it_without_hairpinning(lab: Lab) -> None:
    """Hairpinning (RFC 4787 §6): the testbed's routers, like many home routers, do not
    loop a datagram for their own public address back inside, so neither side's punch
    arrives; the relay carries the session, and a player elsewhere is punched."""
    homes = lab.homes
    offered, results = run_match(
        lab,
        homes["pr"].hosts[0],
        {"neighbour": homes["pr"].hosts[1], "fc": homes["fc"].host},
        "hairpin",
        via=(lab.entry(0),),
    )
    completed(offered["outcome"], 2)
    assert {name: r.path for name, (r, _) in results.items()} == {
        "neighbour": "relayed",
        "fc": "punched",
    }


def test_the_command_line_referee_behind_a_symmetric_nat_and_players_behind_two_others(
    lab: Lab, tmp_path: Path
) -> None:
    """The same flow as real processes: ``referee serve --via`` and two ``play``."""
    homes = lab.homes
    digest = code_hash(ARENA).hex()
    entry = lab.entries[0].endpoint(PORT)
    ref_key = SigningKey.generate()
    write_key(tmp_path / "ref.key", ref_key)
    names = ("fc", "pr")
    keys = {name: SigningKey.generate() for name in names}
    for name, key in keys.items():
        write_key(tmp_path / f"{name}.key", key)
    serve = homes["sym"].host.popen(
        [
            *FAIRDHT_CMD,
            "referee",
            "serve",
            "--bundle",
            str(ARENA),
            "--trust-code",
            digest,
            "--game",
            "game-home",
            "--key",
            str(tmp_path / "ref.key"),
            "--bootstrap",
            entry,
            "--via",
            entry,
            "--via",
            lab.entries[1].endpoint(PORT),
            "--tick-ms",
            "50",
            "--matches",
            "1",
            "--json",
            "--data-dir",
            str(tmp_path / "ref"),
        ]
    )
    assert serve.stdout is not None
    started = json.loads(serve.stdout.readline())
    assert started["endpoint"] == "via 198.18.1.10:4000 198.18.2.10:4000"
    roster = ",".join(k.public_key.hex() for k in keys.values())
    plays = {
        name: homes[name].host.popen(
            play_command(
                match="cli-sym",
                code_hash=digest,
                referee=ref_key.public_key.hex(),
                roster=roster,
                key=str(tmp_path / f"{name}.key"),
                bootstrap=lab.entries[1].endpoint(PORT),
                data_dir=str(tmp_path / name),
            )
        )
        for name in names
    }
    docs = {}
    for name, play in plays.items():
        out, err = play.communicate(timeout=120)
        assert play.returncode == 0, err
        docs[name] = json.loads(out)
    assert serve.wait(timeout=30) == 0
    assert docs["fc"]["outcome"]["status"] == "completed"
    assert docs["fc"]["outcome"] == docs["pr"]["outcome"]
    assert {name: d["path"] for name, d in docs.items()} == {"fc": "punched", "pr": "relayed"}


def test_keepalives_hold_a_punched_session_open_behind_nats_that_forget_after_two_seconds(
    lab: Lab,
) -> None:
    _, counters = late_join(lab, "keepalive", 0.5)
    assert counters.get("quic.keepalive", 0) >= 10
    # The punched path never went quiet: nothing was rerouted, nothing relayed.
    assert counters.get("quic.route.dead", 0) == 0
    assert counters.get("quic.bytes_out.relayed", 0) == 0


def test_a_relay_that_dies_mid_match_is_replaced_by_the_next(lab: Lab) -> None:
    homes = lab.homes
    relay = lab.nodes[2]

    def kill_first_relay() -> None:
        time.sleep(0.5)
        relay.kill()

    offered, results = run_match(
        lab,
        homes["sym"].host,
        {"pr0": homes["pr"].hosts[0], "pr1": homes["pr"].hosts[1]},
        "relay-dies",
        via=(lab.entry(2), lab.entry(1)),
        keepalive=0.5,
        during=kill_first_relay,
        duration_ms=8000,
    )
    body = completed(offered["outcome"], 2)
    rerouted = sum(m.get("quic.rerouted", 0) for _, m in results.values())
    assert rerouted >= 1, [m for _, m in results.values()]
    for result, _ in results.values():
        assert result.outcome is not None and result.outcome.body_as(MatchOutcome) == body
