#!/usr/bin/env python3
"""NAT traversal: how a player reaches another player, for each pair of NAT types.

Needs root (network namespaces) and nftables: it builds the NAT testbed of
tests/kit/netlab.py and exits with a one-line reason where it cannot.

Testbed: entry nodes e1-e3 (public; rendezvous and relays), a public target and a public
initiator, and for each NAT type (full cone, port-restricted, symmetric, and carrier-grade
NAT: a port-restricted home router behind a carrier's NAT) two homes: home "a" holds the
target and a second host (the hairpin initiator: two players behind one NAT), home "b"
the initiator of same-type pairs. Every node is the real ``DHTNode`` with the relay
protocol, run in this process on a thread inside its host's namespace; each target runs
the node's real reachability checker (``--reachability check``: dial-backs, verdict,
rendezvous registrations and keep-alives).

Per attempt a fresh initiator node tries, the way a player would:

1. direct: a ping to the address the target is seen at (none for a symmetric NAT);
2. punched: ``connect_via`` its rendezvous node (hole punching), then a ping over the path;
3. relayed: ``open_relay`` through the same node, then ECHO_FRAMES payloads each way.

Recorded per pair: the share of attempts that ended direct / punched / relayed / failed;
the sequential round trips on the path that connected (direct 1; punched: the
rendezvous token, the offer to the rendezvous node and on to the target, the punch and
its echo: 3-4; relayed: offer, target, one relayed echo through the relay: 4), and
with those of the stages that failed before it; the time to connect on the testbed (no
latency there: the timeouts of failed stages dominate) and under the simulator's
latency model (scale.LATENCY, 20-150 ms one way per datagram, uniform: each of all the
round trips is two draws, plus the same waits); and the bytes the relay exchanged with
the circuit's two ends (setup and the echo).

    sudo .venv/bin/python scripts/bench/nat.py [--quick] [--attempts N]

Writes ``<out>/nat.json`` and ``<out>/nat.md`` (the table of docs/BENCHMARKS.md).
"""

from __future__ import annotations

import asyncio
import importlib.util
import random
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from benchlib import Progress, bench_parser, fmt, percentile, print_table, write_results
from scale import LATENCY

from fairdht.dht import DHTConfig, DHTNode
from fairdht.dht.relay import Circuit, RelayProtocol
from fairdht.dht.rpc import Address, normalize_ip
from fairdht.dht.storage import MemoryRecordStore
from fairdht.identity import SigningKey
from fairdht.node.reachability import ReachabilityChecker, ReachabilitySettings

NAME = "nat"
ROOT = Path(__file__).resolve().parents[2]
KINDS = ("public", "full-cone", "port-restricted", "symmetric", "cgnat")
# Waits of a player's stages, the same on the testbed and in the latency model: a
# direct ping's timeout (RTTs of the model are at most 0.3 s), the punch's wait after
# the rendezvous node answered (PunchProtocol.connect_via's default), a relayed echo's.
RPC_TIMEOUT = 0.5
PUNCH_WAIT = 2.0
ECHO_WAIT = 2.0
ECHO_FRAMES = 5
ECHO_BYTES = 200
PORT = 4000
# A rendezvous node takes one offer a second from one IP (bursts of 4): a player's
# attempts are paced this far apart, outside the time measured.
PACE = 2.5
# The testbed's full-cone map is refreshed by the first packet of each new flow only
# (its nftables rule sits in a NAT chain), not by every outgoing packet as RFC 4787
# REQ-6 asks, so a public-verdict node that only answers would lose its mapping after
# the default 120 s; its home keeps mappings for the whole run instead.
FULL_CONE_MAPPING = 3600
QUICK_PAIRS = (
    ("public", "port-restricted"),
    ("port-restricted", "symmetric"),
    ("symmetric", "symmetric"),
    ("cgnat", "port-restricted"),
)


def load_kit() -> ModuleType:
    """tests/kit/netlab.py (the testbed), loaded under its own name."""
    path = ROOT / "tests" / "kit" / "netlab.py"
    spec = importlib.util.spec_from_file_location("fairdht_testkit_netlab", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"nat: cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class CountingRelay(RelayProtocol):
    """The relay protocol, counting bytes in and out per remote address (thread-safe)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lock = threading.Lock()
        self.bytes_by: Counter[Address] = Counter()

    def _handle_datagram(self, data: bytes, addr: Any) -> None:
        # Every datagram passes here, those the socket drain reads too.
        with self.lock:
            self.bytes_by[(normalize_ip(addr[0]), addr[1])] += len(data)
        super()._handle_datagram(data, addr)

    def _sendto(self, data: bytes, address: Address) -> bool:
        with self.lock:
            self.bytes_by[(normalize_ip(address[0]), address[1])] += len(data)
        return super()._sendto(data, address)

    def snapshot(self) -> Counter[Address]:
        """A copy of the byte counts."""
        with self.lock:
            return Counter(self.bytes_by)

    def ends(self, circuit_id: bytes) -> tuple[Address, Address] | None:
        """The two addresses of a circuit this relay holds."""
        held = self._relayed.get(circuit_id)
        return None if held is None else (held.initiator, held.target)


@dataclass
class Served:
    """A node running on its own thread inside a host's namespace, until ``stop``."""

    stop: threading.Event = field(default_factory=threading.Event)
    ready: threading.Event = field(default_factory=threading.Event)
    info: dict[str, Any] = field(default_factory=dict)
    thread: threading.Thread | None = None
    errors: list[BaseException] = field(default_factory=list)


def _dht(key: SigningKey, protocol: type[RelayProtocol] = RelayProtocol) -> DHTNode:
    node = DHTNode(key, MemoryRecordStore(), config=DHTConfig(rpc_timeout=RPC_TIMEOUT))
    node.protocol_class = protocol
    return node


async def _until(stop: threading.Event) -> None:
    await asyncio.get_running_loop().run_in_executor(None, stop.wait)


def serve_entry(host: Any, bootstrap: list[Address]) -> Served:
    """An entry node (public by declaration, as entry nodes are run) that relays."""
    served = Served()

    async def main() -> None:
        node = _dht(SigningKey.generate(), CountingRelay)
        await node.listen(host.v4, PORT)
        try:
            if bootstrap:
                await node.bootstrap(bootstrap)
            served.info["protocol"] = node.protocol
            served.ready.set()
            await _until(served.stop)
        finally:
            await node.stop()

    served.thread, _, served.errors = host.spawn(lambda: asyncio.run(main()))
    return served


async def _echo(proto: RelayProtocol) -> None:
    """Echo every payload of every incoming circuit (the target's side of the echo)."""

    async def one(circuit: Circuit) -> None:
        for _ in range(ECHO_FRAMES):
            data = await circuit.receive(ECHO_WAIT)
            if data is None:
                return
            circuit.send(data)

    tasks: set[asyncio.Task[None]] = set()
    while True:
        task = asyncio.create_task(one(await proto.incoming.get()))
        tasks.add(task)
        task.add_done_callback(tasks.discard)


def serve_target(host: Any, bootstrap: list[Address], keepalive: float) -> Served:
    """A node that checks its reachability, registers at rendezvous nodes and keeps
    them alive, and echoes relayed payloads; ``info`` says how to reach it."""
    served = Served()

    async def main() -> None:
        key = SigningKey.generate()
        # Any public node may be chosen as a rendezvous node and relay (the public
        # target and the full-cone one too), so every node counts its relayed bytes.
        node = _dht(key, CountingRelay)
        await node.listen(host.v4, PORT)
        checker = ReachabilityChecker(
            node,
            ReachabilitySettings(check=True, interval=600.0, keepalive=keepalive),
            clock=time.time,
        )
        checker.start_hidden()
        proto = node.protocol
        assert isinstance(proto, RelayProtocol)
        tasks = [asyncio.create_task(_echo(proto))]
        try:
            await node.bootstrap(bootstrap)
            tasks.append(asyncio.create_task(checker.run()))
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                status = checker.status()
                public = status["reachable"] == "public"
                if public or (status["reachable"] != "unknown" and status["rendezvous"]):
                    break
                await asyncio.sleep(0.2)
            v = checker.verdict
            served.info["protocol"] = proto
            served.info.update(
                key=key.public_key.raw,
                reachable=v.reachable.value,
                observed=v.observed,
                rendezvous=list(checker.rendezvous),
            )
            served.ready.set()
            await _until(served.stop)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await node.stop()

    served.thread, _, served.errors = host.spawn(lambda: asyncio.run(main()))
    return served


@dataclass
class Attempt:
    """One attempt of a player to reach a target: how it ended and what it cost."""

    path: str = "failed"
    wall_s: float = 0.0
    # Sequential round trips on the path that connected, those of the stages that
    # failed before it, and the waits (timeouts) of those stages.
    round_trips: int = 0
    failed_round_trips: int = 0
    waits: list[float] = field(default_factory=list)
    relay_bytes: int | None = None
    reason: str = ""


async def attempt(target: dict[str, Any], relays: dict[Address, CountingRelay]) -> Attempt:
    """Reach ``target`` from a fresh node here: direct, punched, then relayed."""
    out = Attempt()
    node = _dht(SigningKey.generate())
    start = time.monotonic()
    await node.listen("0.0.0.0", 0)
    try:
        proto = node.protocol
        assert isinstance(proto, RelayProtocol)
        proto.set_hidden(True)
        observed: Address | None = target["observed"]
        if observed is not None:
            if await proto.call_ping(observed) is not None:
                out.path, out.round_trips = "direct", 1
                return out
            out.waits.append(RPC_TIMEOUT)
        if not target["rendezvous"]:
            out.reason = "no address that answers and no rendezvous node"
            return out
        why = []
        for rendezvous in target["rendezvous"]:
            # The rendezvous node's address token costs a round trip the first time.
            token = 0 if proto._received_tokens.get(rendezvous) else 1
            got = await proto.connect_via(rendezvous, target["key"], wait=PUNCH_WAIT)
            if isinstance(got, tuple) and await proto.call_ping(got) is not None:
                # token, initiator-rendezvous, rendezvous-target, the punch and its echo.
                out.path, out.round_trips = "punched", token + 3
                return out
            # No punch arrived: the player waited PUNCH_WAIT; refused: the rendezvous
            # node waited its RPC timeout for the target.
            out.waits.append({"no_punch": PUNCH_WAIT, "refused": RPC_TIMEOUT}.get(str(got), 0.0))
            # The offer reached the target and came back (no_punch), or only the
            # rendezvous node answered.
            out.failed_round_trips += token + (2 if got == "no_punch" else 1)
            why.append(f"punch: {got if isinstance(got, str) else 'no ping over the path'}")
            if got == "no_punch":
                # The NATs, not the rendezvous node, stopped it: another node won't help.
                break
        for rendezvous in target["rendezvous"]:
            relay = relays[rendezvous]
            before = relay.snapshot()
            circuit = await proto.open_relay(rendezvous, target["key"])
            if not isinstance(circuit, Circuit):
                why.append(f"relay: {circuit}")
                out.failed_round_trips += 1
                if circuit in ("refused", "relay_silent"):
                    out.waits.append(RPC_TIMEOUT)
                continue
            echoed = 0
            for i in range(ECHO_FRAMES):
                circuit.send(bytes([i]) * ECHO_BYTES)
                if await circuit.receive(ECHO_WAIT) is not None:
                    echoed += 1
            ends = relay.ends(circuit.circuit_id)
            after = relay.snapshot()
            # A relay holds 4 circuits per target: the bench closes each after measuring
            # it (relay_close), as a finished session does, so later players find a slot.
            circuit.close()
            if ends is not None:
                out.relay_bytes = sum(after[a] - before[a] for a in ends)
            if echoed:
                # (token after a failed punch: none) offer to the relay, relay to
                # target, and the first relayed echo: two round trips through the relay.
                out.path, out.round_trips = "relayed", 4
                return out
            why.append("relay: no echo")
        out.reason = "; ".join(why)
        return out
    finally:
        out.wall_s = time.monotonic() - start
        await node.stop()


def modelled(a: Attempt, rng: random.Random) -> float:
    """Seconds ``a`` takes under the simulator's latency model (two draws a round trip)."""
    trips = a.round_trips + a.failed_round_trips
    legs = sum(rng.uniform(*LATENCY) for _ in range(2 * trips))
    return legs + sum(a.waits)


@dataclass(frozen=True)
class Bed:
    """Where every role runs."""

    entries: tuple[Any, ...]
    targets: dict[str, Any]
    initiators: dict[tuple[str, str], Any]


def build(kit: Any, lab: Any) -> Bed:
    """The testbed: entries, a public target and initiator, two homes per NAT type."""
    nat = kit.NatType
    wan = lab.segment("wan")
    entries = tuple(lab.host(f"e{i}", wan, v4=f"198.18.{i}.10") for i in (1, 2, 3))
    targets: dict[str, Any] = {"public": lab.host("pt", wan, v4="198.18.10.10")}
    public_initiator = lab.host("pi", wan, v4="198.18.11.10")
    homes: dict[str, tuple[Any, Any]] = {}
    for index, (kind, nat_type) in enumerate(
        (
            ("full-cone", nat.FULL_CONE),
            ("port-restricted", nat.PORT_RESTRICTED),
            ("symmetric", nat.SYMMETRIC),
        ),
        start=1,
    ):
        timeout = FULL_CONE_MAPPING if nat_type is nat.FULL_CONE else None
        a = lab.home(
            f"h{index}a",
            index,
            nat_type,
            wan,
            wan_ip=f"198.18.20{index}.1",
            hosts=2,
            mapping_timeout=timeout,
        )
        b = lab.home(
            f"h{index}b",
            10 + index,
            nat_type,
            wan,
            wan_ip=f"198.18.21{index}.1",
            mapping_timeout=timeout,
        )
        homes[kind] = (a, b)
    # Carrier-grade NAT (RFC 6888): two subscribers' home routers on the carrier's
    # segment 100.64.0.0/24 (RFC 6598), behind the carrier's port-preserving NAT.
    carrier = lab.segment("carrier", v4="100.64.0.0/24", v6="fd00:64::/64")
    cgn = lab.host("cgn", wan, v4="198.18.204.1")
    cgn_lan = lab.attach(cgn, carrier, v4="100.64.0.1")
    cgn.forwarding()
    cgn.nft(kit.nat_ruleset(nat.PORT_RESTRICTED, cgn.interfaces[0], cgn_lan, "100.64.0.0/24", ""))
    cg = []
    for index, hosts in ((4, 2), (14, 1)):
        home = lab.home(
            f"h{index}",
            index,
            nat.PORT_RESTRICTED,
            carrier,
            wan_ip=f"100.64.0.{index}",
            hosts=hosts,
        )
        home.router.default_route("100.64.0.1")
        cg.append(home)
    homes["cgnat"] = (cg[0], cg[1])
    initiators: dict[tuple[str, str], Any] = {}
    for kind in KINDS:
        if kind != "public":
            targets[kind] = homes[kind][0].hosts[0]
    for src in KINDS:
        for dst in KINDS:
            if src == "public":
                initiators[(src, dst)] = public_initiator
            elif src == dst:
                initiators[(src, dst)] = homes[src][1].hosts[0]
            else:
                initiators[(src, dst)] = homes[src][0].hosts[1]
    for kind in KINDS[1:]:
        initiators[(kind, f"{kind} (hairpin)")] = homes[kind][0].hosts[1]
    return Bed(entries, targets, initiators)


def summarize_pair(attempts: list[Attempt], rng: random.Random) -> dict[str, Any]:
    """Shares, round trips, times (testbed and model) and relay bytes of one pair."""
    n = len(attempts)
    shares = {p: sum(a.path == p for a in attempts) / n for p in PATHS}
    ok = [a for a in attempts if a.path != "failed"]
    wall = [a.wall_s * 1e3 for a in ok]
    model = [modelled(a, rng) * 1e3 for a in ok]
    by_path: dict[str, Any] = {}
    for p in PATHS[:-1]:
        mine = [a for a in attempts if a.path == p]
        if mine:
            by_path[p] = {
                "round_trips": sorted({a.round_trips for a in mine}),
                "round_trips_with_failed_stages": sorted(
                    {a.round_trips + a.failed_round_trips for a in mine}
                ),
                "connect_ms_testbed_p50": percentile([a.wall_s * 1e3 for a in mine], 50),
            }
    relayed = [a.relay_bytes for a in attempts if a.path == "relayed" and a.relay_bytes]
    return {
        "attempts": n,
        "share": shares,
        "by_path": by_path,
        "connect_ms_testbed": {"p50": percentile(wall, 50), "p95": percentile(wall, 95)},
        "connect_ms_model": {"p50": percentile(model, 50), "p95": percentile(model, 95)},
        "relay_bytes_per_circuit": percentile([float(b) for b in relayed], 50),
        "failures": sorted({a.reason for a in attempts if a.path == "failed"}),
    }


PATHS = ("direct", "punched", "relayed", "failed")


def run(args: Any, kit: Any) -> dict[str, Any]:
    """Build the testbed, start the nodes, run the attempts; the results."""
    rng = random.Random(args.seed)
    with kit.netlab("b") as lab:
        bed = build(kit, lab)
        first = bed.entries[0]
        entry_addrs = [(h.v4, PORT) for h in bed.entries]
        served = [serve_entry(first, [])]
        served[0].ready.wait(30)
        served += [serve_entry(h, entry_addrs[:1]) for h in bed.entries[1:]]
        targets: dict[str, Served] = {}
        try:
            for s in served:
                if not s.ready.wait(30):
                    raise SystemExit(f"nat: an entry node did not start: {s.errors}")
            relays = {
                (h.v4, PORT): s.info["protocol"] for h, s in zip(bed.entries, served, strict=True)
            }
            for kind, host in bed.targets.items():
                targets[kind] = serve_target(host, entry_addrs[:2], args.keepalive)
            for kind, s in targets.items():
                if not s.ready.wait(90):
                    raise SystemExit(f"nat: the {kind} target did not start: {s.errors}")
            verdicts = {k: s.info["reachable"] for k, s in targets.items()}
            for kind, s in targets.items():
                # Peers know a node by the address they see (its NAT's, for full cone).
                relays[(bed.targets[kind].v4, PORT)] = s.info["protocol"]
                if s.info["observed"] is not None:
                    relays[tuple(s.info["observed"])] = s.info["protocol"]
            pairs = list(bed.initiators)
            if args.quick:
                pairs = [p for p in pairs if p in QUICK_PAIRS] + [
                    ("port-restricted", "port-restricted (hairpin)")
                ]
            progress = Progress("NAT pairs", len(pairs) * args.attempts, enabled=args.progress)
            results: dict[str, Any] = {}
            for src, dst in pairs:
                target = targets[dst.split(" ")[0]].info
                host = bed.initiators[(src, dst)]
                attempts = []
                for _ in range(args.attempts):
                    one = host.call(lambda t=target: asyncio.run(attempt(t, relays)))
                    attempts.append(one)
                    progress.step()
                    if one.path != "direct":
                        time.sleep(PACE)
                results[f"{src} -> {dst}"] = {
                    "initiator": src,
                    "target": dst,
                    **summarize_pair(attempts, rng),
                }
            progress.close()
        finally:
            for s in [*targets.values(), *served]:
                s.stop.set()
            for s in [*targets.values(), *served]:
                if s.thread is not None:
                    s.thread.join(30)
    return {"verdicts": verdicts, "pairs": results, "totals": totals(results)}


def totals(pairs: dict[str, Any]) -> dict[str, Any]:
    """Shares over every attempt of every pair, and over pairs with two NATs only."""
    out: dict[str, Any] = {}
    for label, keep in (
        ("all", lambda p: True),
        ("both_behind_nat", lambda p: p["initiator"] != "public" and p["target"] != "public"),
    ):
        chosen = [p for p in pairs.values() if keep(p)]
        n = sum(p["attempts"] for p in chosen)
        out[label] = {
            path: (sum(p["share"][path] * p["attempts"] for p in chosen) / n if n else None)
            for path in PATHS
        }
        # DCUtR's figure counts punches among attempts that needed one (not direct).
        tried = sum(p["attempts"] * (1 - p["share"]["direct"]) for p in chosen)
        punched = sum(p["attempts"] * p["share"]["punched"] for p in chosen)
        out[label]["punch_success_when_needed"] = punched / tried if tried else None
    return out


def table(results: dict[str, Any]) -> tuple[str, list[str], list[list[Any]]]:
    """The markdown table of docs/BENCHMARKS.md, "NAT traversal"."""
    header = [
        "initiator → target",
        "n",
        "direct",
        "punched",
        "relayed",
        "failed",
        "round trips: path (all)",
        "testbed p50/p95 ms",
        "model p50/p95 ms",
        "relay bytes/circuit",
    ]
    rows: list[list[Any]] = []
    for p in results["pairs"].values():
        share = p["share"]
        trips = ", ".join(
            f"{path} {'/'.join(str(r) for r in v['round_trips'])}"
            f" ({'/'.join(str(r) for r in v['round_trips_with_failed_stages'])})"
            for path, v in p["by_path"].items()
        )
        t, m = p["connect_ms_testbed"], p["connect_ms_model"]
        rows.append(
            [
                f"{p['initiator']} → {p['target']}",
                p["attempts"],
                *(f"{share[k]:.0%}" for k in PATHS),
                trips or "–",
                f"{fmt(t['p50'], 0)} / {fmt(t['p95'], 0)}",
                f"{fmt(m['p50'], 0)} / {fmt(m['p95'], 0)}",
                p["relay_bytes_per_circuit"],
            ]
        )
    return "NAT traversal: how a player reached another (scripts/bench/nat.py)", header, rows


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(__doc__.splitlines()[0] if __doc__ else NAME)
    parser.add_argument("--attempts", type=int, default=None, help="attempts per pair")
    parser.add_argument(
        "--keepalive", type=float, default=15.0, help="targets' keep-alive (s, default 15)"
    )
    args = parser.parse_args(argv)
    args.attempts = args.attempts or (1 if args.quick else 10)
    if not 1 <= args.attempts <= 100:
        parser.error("--attempts must be 1-100")
    args.progress = not args.no_progress
    kit = load_kit()
    reason = kit.nat_unavailable()
    if reason is not None:
        sys.stderr.write(
            f"nat: needs root (network namespaces) and nftables, and cannot run here: {reason}\n"
        )
        return 2
    started = time.monotonic()
    results = run(args, kit)
    results["run_seconds"] = time.monotonic() - started
    title, header, rows = table(results)
    text = print_table(title, header, rows)
    settings = {
        "quick": args.quick,
        "attempts_per_pair": args.attempts,
        "seed": args.seed,
        "keepalive_s": args.keepalive,
        "rpc_timeout_s": RPC_TIMEOUT,
        "punch_wait_s": PUNCH_WAIT,
        "echo": {"frames_each_way": ECHO_FRAMES, "bytes": ECHO_BYTES},
        "latency_model_s": LATENCY,
    }
    write_results(args.out, NAME, settings, results)
    (args.out / f"{NAME}.md").write_text(text.lstrip() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
