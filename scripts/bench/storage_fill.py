"""Storage fill from one IP (issue 12): honest put success and latency, with and without it.

N full nodes (node i on 127.0.i.1, SQLite stores, real UDP on loopback) and honest
publishers, light clients on 16 addresses of their own /24s (127.0.100+j.1), that put
server announcements, ``--parallel`` at a time. An attacker in a process of its own, a
light client on 127.0.66.1, holds many free keys and hands its records straight to
every node in full STOREs (no lookups: the cheapest fill), enough to fill every
node's store one and a half times, sending again what a node refused as "busy" (its
per-IP signature budget) until the fill is done or ``--fill-seconds`` pass. Scenarios:

- ``no_attack``: the honest puts alone;
- ``one_ip_fill``: the same puts while the fill runs ("during") and once it is done
  ("after"), with the source quotas (docs/protocol.md, "Storage policy");
- ``one_ip_fill_eviction_only``: the same with per-IP, per-contact and per-/24
  quotas as large as the store: the attacker may hold the whole store, and only the
  eviction of the heaviest /24 makes room for honest records.

A put succeeds when a majority of the replicas asked stored it. Quotas scale with
``--max-bytes`` as the defaults do (per IP 1/32 of it, per contact and per /24 1/8).
The issue's goal, honest latency within 2x of no attack, is measured here (``ratios``),
not asserted anywhere. The nodes and the honest publishers share one process and
event loop (the nodes' signature checks of the fill slow them all down).

    .venv/bin/python scripts/bench/storage_fill.py [--quick] [--nodes 10] [--max-bytes N]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchlib import Progress, bench_parser, print_table, ratio, summarize, write_results
from kademlia.node import Node

from fairdht.dht import DHTConfig, DHTNode
from fairdht.dht.protocol import store_batches
from fairdht.dht.storage import MemoryRecordStore, SQLiteRecordStore
from fairdht.errors import NetworkError, RecordError
from fairdht.identity import SigningKey
from fairdht.records import Record, sign_record
from fairdht.records.kinds.server import SERVER_KIND, ServerAnnouncement

NAME = "storage_fill"
NETWORK = "bench-fill"
SCENARIOS = ("no_attack", "one_ip_fill", "one_ip_fill_eviction_only")
HONEST_CLIENTS = 16
SCRIPT = Path(__file__).resolve()
ATTACKER_IP = "127.0.66.1"


def config_for(max_bytes: int, *, source_quotas: bool) -> DHTConfig:
    """Node settings: default quota rules scaled to ``max_bytes``."""
    base = DHTConfig(rpc_timeout=1.0, replicate_interval=3600.0)
    if not source_quotas:
        return dataclasses.replace(
            base,
            max_bytes=max_bytes,
            max_per_ip=max_bytes,
            max_per_contact=max_bytes,
            max_per_net=max_bytes,
        )
    return dataclasses.replace(
        base,
        max_bytes=max_bytes,
        max_per_ip=max_bytes // 32,
        max_per_contact=max_bytes // 8,
        max_per_net=max_bytes // 8,
    )


def announcement(key: SigningKey, slot: int, name: str, now: float) -> Record:
    """A server announcement (~230 bytes) by ``key`` in slot ``slot``."""
    body = ServerAnnouncement(address=f"192.0.2.{slot % 250 + 1}:28785", name=name, mode="ctf")
    return sign_record(key, SERVER_KIND, NETWORK, b"s%d" % slot, body, now=now)


def junk(total_bytes: int, now: float, per_key: int) -> list[Record]:
    """Records from free keys, ``per_key`` each, until they add up to ``total_bytes``."""
    out: list[Record] = []
    size = 0
    i = 0
    while size < total_bytes:
        key = SigningKey.generate()
        for slot in range(per_key):
            record = announcement(key, slot, f"junk {i}", now)
            out.append(record)
            size += len(record.raw)
        i += 1
    return out


async def flood(
    attacker: DHTNode,
    targets: Sequence[tuple[bytes, str, int]],
    records: Sequence[Record],
    *,
    deadline: float,
) -> int:
    """Hand ``records`` to every target in full STOREs, again and again while a target
    answers "busy" (its per-IP signature budget), until ``deadline``; return how many
    were stored in all."""
    by_key: dict[bytes, list[bytes]] = {}
    for r in records:
        by_key.setdefault(r.key, []).append(r.raw)

    async def one(target: tuple[bytes, str, int]) -> int:
        peer = Node(*target)
        pending = [(key, batch) for key, raws in by_key.items() for batch in store_batches(raws)]
        stored = 0
        while pending and time.monotonic() < deadline:
            retry: list[tuple[bytes, list[bytes]]] = []
            for key, batch in pending:
                reply = await attacker.protocol.call_store(peer, key, batch)
                if reply is None:
                    retry.append((key, batch))
                    continue
                stored += sum(1 for item in reply if item is True)
                busy = [raw for raw, item in zip(batch, reply, strict=True) if item == "busy"]
                if busy:
                    retry.append((key, busy))
            pending = retry
            if pending:
                await asyncio.sleep(0.2)
        return stored

    return sum(await asyncio.gather(*(one(t) for t in targets)))


class Honest:
    """The honest publishers: puts, round robin over their clients, and what they cost."""

    def __init__(self, clients: Sequence[DHTNode], parallel: int) -> None:
        self.clients = list(clients)
        self.parallel = max(1, parallel)
        self.n = 0

    async def put(self) -> tuple[bool, float]:
        """One put of a new record by a new key: (a majority stored it, seconds)."""
        self.n += 1
        client = self.clients[self.n % len(self.clients)]
        record = announcement(SigningKey.generate(), 0, f"honest {self.n}", time.time())
        t0 = time.perf_counter()
        try:
            result = await client.put(record)
            ok = result.accepted * 2 > result.asked
        except (NetworkError, RecordError):
            ok = False
        return ok, time.perf_counter() - t0

    async def phase(self, count: int, until: asyncio.Future[Any] | None = None) -> dict[str, Any]:
        """``count`` puts (with ``until``: as many as run before it is done, at least
        ``count``, at most 5x); their success rate and latency."""
        results: list[tuple[bool, float]] = []
        while len(results) < count or (until is not None and not until.done()):
            results.extend(await asyncio.gather(*(self.put() for _ in range(self.parallel))))
            if len(results) >= 5 * count:
                break
        ms = [s * 1000 for _, s in results]
        return {
            "puts": len(results),
            "succeeded": sum(ok for ok, _ in results),
            "success": sum(ok for ok, _ in results) / len(results),
            "latency_ms": summarize(ms),
            "median_ms": statistics.median(ms),
        }


async def attack_in_child(dht: Sequence[DHTNode], fill_bytes: int, seconds: float) -> int:
    """Run the attacker as a process of its own; return how many records it got stored."""
    plan = {
        "nodes": [[n.node_id.hex(), n.address[0], n.address[1]] for n in dht],
        "bytes": fill_bytes,
        "seconds": seconds,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SCRIPT),
        "--attack",
        json.dumps(plan),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"the attacker process failed ({proc.returncode})")
    return int(json.loads(out.decode().strip().splitlines()[-1])["stored"])


async def attack(plan: dict[str, Any]) -> int:
    """The attacker's side: sign the junk, then flood every node from ATTACKER_IP."""
    records = junk(int(plan["bytes"]), time.time(), per_key=64)
    config = DHTConfig(rpc_timeout=1.0, replicate_interval=3600.0, client_mode=True)
    client = DHTNode(SigningKey.generate(), MemoryRecordStore(), config=config)
    await client.listen(ATTACKER_IP, 0)
    targets = [(bytes.fromhex(i), str(ip), int(port)) for i, ip, port in plan["nodes"]]
    try:
        deadline = time.monotonic() + float(plan["seconds"])
        return await flood(client, targets, records, deadline=deadline)
    finally:
        await client.stop()


async def run_scenario(
    scenario: str,
    *,
    nodes: int,
    max_bytes: int,
    puts: int,
    parallel: int,
    fill_limit: float,
    tmp: Path,
) -> dict[str, Any]:
    """One fresh network; the honest puts' numbers during and after the fill."""
    config = config_for(max_bytes, source_quotas=scenario != "one_ip_fill_eviction_only")
    dht: list[DHTNode] = []
    clients: list[DHTNode] = []
    try:
        for i in range(1, nodes + 1):
            store = SQLiteRecordStore(
                tmp / f"{scenario}-{i}.sqlite",
                quotas=config.storage_quotas(),
                synchronous="normal",
            )
            node = DHTNode(SigningKey.generate(), store, config=config)
            await node.listen(f"127.0.{i}.1", 0)
            dht.append(node)
        for node in dht[1:]:
            await node.bootstrap([dht[0].address])
        for node in dht:
            await node.settle()
        light = dataclasses.replace(config, client_mode=True)
        for j in range(HONEST_CLIENTS):
            client = DHTNode(SigningKey.generate(), MemoryRecordStore(), config=light)
            await client.listen(f"127.0.{100 + j}.1", 0)
            await client.bootstrap([dht[j % nodes].address])
            clients.append(client)
        honest = Honest(clients, parallel)
        fill: asyncio.Future[int] | None = None
        fill_bytes = 0
        if scenario != "no_attack":
            fill_bytes = max_bytes * 3 // 2
            fill = asyncio.ensure_future(attack_in_child(dht, fill_bytes, fill_limit))
            # Let the attacker sign its junk and start before the honest puts begin.
            for _ in range(int(fill_limit * 20)):
                if fill.done() or stored_by_attacker(dht) > 0:
                    break
                await asyncio.sleep(0.05)
        t0 = time.perf_counter()
        during = await honest.phase(puts, fill)
        stored = await fill if fill is not None else 0
        fill_seconds = time.perf_counter() - t0
        # A fill that starves the nodes of CPU makes RPCs time out, and contacts that
        # time out twice leave routing tables: what the "after" phase starts from.
        peers_after_fill = min(n.peer_count() for n in dht)
        after = await honest.phase(puts)
        return {
            "scenario": scenario,
            "nodes": nodes,
            "max_bytes": max_bytes,
            "fill_bytes_offered": fill_bytes,
            "fill_records_stored": stored,
            "fill_seconds_after_first_store": fill_seconds,
            "attacker_bytes_held_max": stored_by_attacker(dht),
            "store_bytes_max": max(n.store.total_bytes() for n in dht),
            "peers_min_before": nodes - 1,
            "peers_min_after_fill": peers_after_fill,
            "during": during,
            "after": after,
        }
    finally:
        for node in [*clients, *dht]:
            await node.stop()
            node.store.close()


def stored_by_attacker(dht: Sequence[DHTNode]) -> int:
    """The most bytes any node holds charged to the attacker's IP."""
    return max(n.store.source_bytes().get(f"ip:{ATTACKER_IP}", 0) for n in dht)


def main() -> int:
    """Run every scenario; print a table and write JSON."""
    parser = bench_parser(__doc__ or NAME)
    parser.add_argument("--nodes", type=int, help="full nodes (default 4 quick, 10)")
    parser.add_argument(
        "--max-bytes", type=int, help="store size per node (default 256 KiB / 4 MiB)"
    )
    parser.add_argument("--puts", type=int, help="honest puts per phase (at least)")
    parser.add_argument("--parallel", type=int, default=4, help="honest puts in flight")
    parser.add_argument("--fill-seconds", type=float, help="longest fill (default 20 / 600)")
    parser.add_argument("--attack", help=argparse.SUPPRESS)  # the attacker process's plan
    args = parser.parse_args()
    if args.attack:
        print(json.dumps({"stored": asyncio.run(attack(json.loads(args.attack)))}))
        return 0
    fill_limit = args.fill_seconds or (20.0 if args.quick else 600.0)
    nodes = args.nodes or (4 if args.quick else 10)
    max_bytes = args.max_bytes or (256 * 1024 if args.quick else 4 * 1024 * 1024)
    puts = args.puts or (8 if args.quick else 100)
    settings = {
        "quick": args.quick,
        "nodes": nodes,
        "max_bytes": max_bytes,
        "puts_per_phase": puts,
        "parallel": args.parallel,
        "fill_seconds_limit": fill_limit,
    }
    bar = Progress("storage fill scenarios", len(SCENARIOS), enabled=not args.no_progress)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="fairdht-fill-") as tmp:
        for scenario in SCENARIOS:
            rows.append(
                asyncio.run(
                    run_scenario(
                        scenario,
                        nodes=nodes,
                        max_bytes=max_bytes,
                        puts=puts,
                        parallel=args.parallel,
                        fill_limit=fill_limit,
                        tmp=Path(tmp),
                    )
                )
            )
            bar.step()
    bar.close()
    base = rows[0]["after"]["median_ms"]
    ratios = {
        f"{r['scenario']}_{phase}_median_vs_no_attack": ratio(r[phase]["median_ms"], base)
        for r in rows[1:]
        for phase in ("during", "after")
    }
    print_table(
        f"Honest puts during and after a one-IP fill ({nodes} nodes, {max_bytes} B each)",
        [
            "scenario",
            "phase",
            "puts",
            "success",
            "median ms",
            "p95 ms",
            "attacker B held",
            "min peers",
        ],
        [
            [
                r["scenario"],
                phase,
                r[phase]["puts"],
                r[phase]["success"],
                r[phase]["latency_ms"].median,
                r[phase]["latency_ms"].p95,
                r["attacker_bytes_held_max"],
                r["peers_min_after_fill"] if phase == "after" else r["peers_min_before"],
            ]
            for r in rows
            for phase in ("during", "after")
        ],
    )
    write_results(args.out, NAME, settings, {"scenarios": rows, "ratios": ratios})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
