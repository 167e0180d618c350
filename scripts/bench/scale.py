"""Scale: the real DHTNode code on the in-memory network in virtual time, N up to 100,000.

For each N, build the network one of two ways:

- ``--build prebuilt`` (default): the settled routing tables of N nodes computed from
  their ids in O(N log N) (``fairdht.sim.tables``: up to k random nodes per distance
  range, all of them where fewer), and a node becomes a real DHTNode (MemoryRecordStore,
  own /24) only when a datagram first reaches it (``fairdht.sim.prebuilt``), so memory
  follows the traffic, not N;
- ``--build joins``: start all N DHTNodes and join them through earlier nodes (each join
  is DHTNode.bootstrap: own-id lookup plus the far-bucket refresh of Kademlia §2.3);
  about N^1.7 in time and ~200 KiB per node, so 3,000 nodes is its practical limit.

Then put records and measure from random nodes:

- ``get`` of a stored key (stops once ``read_replicas`` holders in a row agree) and
  ``find_nodes`` of a random id (stops once the k closest answered);
- hops = round trips on the lookup's critical path: during measurement every datagram
  takes exactly ``HOP_DELAY`` one way, so a lookup's virtual duration / (2 * HOP_DELAY)
  counts sequential round trips whatever the lookup's parallelism (rounded to 0.01:
  virtual Unix time near 1.7e9 has a resolution of about 0.2 µs);
- messages = datagrams the initiator sent plus those delivered to it;
- rounds under a latency model: every datagram then takes a uniform random
  ``LATENCY`` one way (20-150 ms, a wide-area spread), and each get reports its
  virtual wall time and its sequential rounds (``Lookup.rounds``: a query started on
  an answer of round r is of round r + 1), the numbers to set beside Kademlia's
  analysis and libp2p's measurements (docs/BENCHMARKS.md);
  Before each such get the reader runs one find_node under the model (``--no-warmup``
  skips it), so its RTT estimator, which sets the lookup's stall time (RFC 6298), holds
  wide-area round trips as a node's on the internet does, not the 10 ms phase's;
- find_node exact (prebuilt only): the share of find_nodes that returned exactly the k
  closest ids of all N (brute force);
- memory: the process's resident memory after the build and at the end (tables plus
  every node started), its peak, and the started ("live") nodes; the per-node figure is
  the growth over the whole size divided by N (later sizes reuse memory freed by
  earlier ones, so it is a slight undercount); with ``--tracemalloc`` also the Python
  heap traced after the build, divided by N (exact, but about 5x slower).

    .venv/bin/python scripts/bench/scale.py [--quick] [--sizes 1000,10000,30000,100000]

Writes ``<out>/scale.json`` and, with matplotlib installed, ``<out>/scale.png`` (hops
and messages vs N with the log2(N) curve).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import resource
import time
import tracemalloc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchlib import Progress, bench_parser, print_table, summarize, write_results

from fairdht.dht import DHTConfig, DHTNode
from fairdht.errors import NetworkError
from fairdht.identity import SigningKey
from fairdht.records import Record
from fairdht.sim import run_virtual, virtual_clock
from fairdht.sim.harness import SimSpec, Simulation
from fairdht.sim.prebuilt import PrebuiltSimulation
from fairdht.sim.workload import server_record

NAME = "scale"
# --quick finishes in about 10 s (issue 8).
QUICK_SIZES = (100, 300)
FULL_SIZES = (1000, 10000, 30000, 100000)
# One-way delay of every datagram while measuring (build uses a random 5-20 ms).
HOP_DELAY = 0.01
# One-way delay range of the latency-model phase (uniform per datagram).
LATENCY = (0.02, 0.15)


def resident_bytes() -> int:
    """The process's resident memory (Linux /proc/self/statm); 0 where unavailable."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class _Bar:
    """A ``progress(done, total)`` callback drawing a benchlib Progress line."""

    def __init__(self, label: str, enabled: bool) -> None:
        self.label = label
        self.enabled = enabled
        self.bar: Progress | None = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = Progress(self.label, total, enabled=self.enabled)
        self.bar.step(done - self.bar.done)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


async def run_size(
    n: int,
    *,
    seed: int,
    lookups: int,
    records: int,
    refresh: bool,
    memory: bool,
    progress: bool,
    build: str = "prebuilt",
    warm: bool = True,
    config: DHTConfig | None = None,
) -> dict[str, Any]:
    """Build one network of ``n`` nodes, measure it, and return the numbers."""
    config = config or DHTConfig()
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    rss0 = resident_bytes()
    if memory:
        tracemalloc.start()
    bar = _Bar(f"N={n}: build ({build})", progress)
    sim: Simulation | PrebuiltSimulation
    if build == "joins":
        sim = Simulation(SimSpec(nodes=n, seed=seed, config=config))
        await sim.build(bar)
    else:
        # Settled tables, nodes started when first reached (fairdht.sim.prebuilt).
        sim = PrebuiltSimulation(
            SimSpec(nodes=n, seed=seed, config=config, delay=(HOP_DELAY, HOP_DELAY))
        )
        await sim.build(bar)
    bar.close()
    heap = tracemalloc.get_traced_memory()[0] if memory else 0
    if memory:
        tracemalloc.stop()
    rss_built = resident_bytes()
    build_s = time.perf_counter() - t0
    # CPU seconds too: on a shared machine the wall time also counts other people's work.
    build_cpu = time.process_time() - cpu0
    build_datagrams = sim.net.counters.sent
    if refresh and isinstance(sim, Simulation):
        bar = _Bar(f"N={n}: extra refresh (§2.3)", progress)
        await sim.refresh_tables(bar)
        bar.close()
    refresh_datagrams = sim.net.counters.sent - build_datagrams

    async def node_at(i: int) -> DHTNode:
        if isinstance(sim, Simulation):
            return sim.nodes[i]
        return await sim.node(i)

    def key_at(i: int) -> SigningKey:
        return sim.keys[i] if isinstance(sim, Simulation) else sim.key(i)

    # Measurement: no loss, one fixed delay, so virtual duration counts round trips.
    sim.net.loss = 0.0
    sim.net.delay = (HOP_DELAY, HOP_DELAY)
    await asyncio.sleep(1.0)  # let build traffic drain
    rng = random.Random(f"scale|{seed}|{n}")
    clock = virtual_clock()
    stored: list[tuple[bytes, Record]] = []
    for j in range(records):
        i = rng.randrange(n)
        record = server_record(key_at(i), now=clock(), subkey=b"bench%d" % j)
        try:
            await (await node_at(i)).put(record)
        except NetworkError:
            continue
        stored.append((record.key, record))
    get_hops: list[float] = []
    get_msgs: list[float] = []
    found = 0
    find_hops: list[float] = []
    find_msgs: list[float] = []
    find_exact = 0
    lookup_bar = Progress(f"N={n}: lookups", 2 * lookups, enabled=progress)
    for _ in range(lookups):
        key, record = stored[rng.randrange(len(stored))]
        i = rng.randrange(n)
        reader = await node_at(i)
        try:
            got, cost = await sim.measure(i, reader.get(key))
        except NetworkError:
            got, cost = [], None
        if record in got:
            found += 1
        if cost is not None:
            get_hops.append(round(cost.elapsed / (2 * HOP_DELAY), 2))
            get_msgs.append(cost.messages)
        lookup_bar.step()
        i = rng.randrange(n)
        target = rng.randbytes(20)
        seeker = await node_at(i)
        closest, cost = await sim.measure(i, seeker.find_nodes(target))
        if isinstance(sim, PrebuiltSimulation) and sim.tables is not None:
            # Against brute force over all N ids: the lookup found the true k closest.
            truth = [sim.node_id(j) for j in sim.tables.closest(target, config.ksize, exclude=i)]
            find_exact += [c.id for c in closest] == truth
        find_hops.append(round(cost.elapsed / (2 * HOP_DELAY), 2))
        find_msgs.append(cost.messages)
        lookup_bar.step()
    lookup_bar.close()
    # Latency model: wall time and sequential rounds of gets over a wide-area spread.
    sim.net.delay = LATENCY
    wall_ms: list[float] = []
    rounds: list[float] = []
    wide_found = 0
    get_msgs_wide: list[float] = []
    stalls: list[float] = []
    secure_ms: list[float] = []
    secure_msgs: list[float] = []
    secure_found = 0
    wide_bar = Progress(f"N={n}: latency model", lookups, enabled=progress)
    for _ in range(lookups):
        key, record = stored[rng.randrange(len(stored))]
        i = rng.randrange(n)
        reader = await node_at(i)
        if warm:
            # A node on the internet has measured internet round trips: one lookup under
            # the model fills its RTT estimator (RFC 6298), which sets the stall time.
            await reader.find_nodes(rng.randbytes(20))
        r0 = reader.metrics.get("get.rounds")
        s0 = reader.metrics.get("lookup.stalled")
        try:
            got, cost = await sim.measure(i, reader.get(key))
        except NetworkError:
            continue
        wide_found += record in got
        wall_ms.append(cost.elapsed * 1e3)
        rounds.append(float(reader.metrics.get("get.rounds") - r0))
        stalls.append(float(reader.metrics.get("lookup.stalled") - s0))
        get_msgs_wide.append(cost.messages)
        # The same read over 3 disjoint, id-proving paths (S/Kademlia §4.4).
        try:
            got, cost = await sim.measure(i, reader.secure_get(key))
        except NetworkError:
            continue
        secure_found += record in got
        secure_ms.append(cost.elapsed * 1e3)
        secure_msgs.append(cost.messages)
        wide_bar.step()
    wide_bar.close()
    if isinstance(sim, Simulation):
        peers = [node.peer_count() for node in sim.nodes]
        live = n
    else:
        peers = [sim.table_size(i) for i in range(n)]
        live = len(sim.live())
    rss_end = resident_bytes()
    await sim.stop()
    return {
        "nodes": n,
        "build": build,
        "log2_n": math.log2(n),
        "build_seconds": build_s,
        "build_cpu_seconds": build_cpu,
        "build_datagrams_per_node": build_datagrams / n,
        "refresh": refresh,
        "refresh_datagrams_per_node": refresh_datagrams / n,
        "routing_contacts": summarize(peers),
        "records_put": len(stored),
        "get_success": found / lookups if lookups else math.nan,
        "get_hops": summarize(get_hops),
        "get_messages": summarize(get_msgs),
        "find_node_hops": summarize(find_hops),
        "find_node_messages": summarize(find_msgs),
        "find_node_exact": find_exact / lookups if build != "joins" and lookups else math.nan,
        "latency_model_s": LATENCY,
        "latency_warmup": warm,
        "stall_max_s": config.stall_max,
        "wide_get_success": wide_found / lookups if lookups else math.nan,
        "wide_get_wall_ms": summarize(wall_ms),
        "wide_get_rounds": summarize(rounds),
        "wide_get_messages": summarize(get_msgs_wide),
        "wide_get_stalls": summarize(stalls),
        "secure_get_success": secure_found / lookups if lookups else math.nan,
        "secure_get_wall_ms": summarize(secure_ms),
        "secure_get_messages": summarize(secure_msgs),
        "heap_bytes_per_node": heap / n if memory else math.nan,
        # Everything the size added to the process (tables, started nodes), over N.
        "rss_bytes_per_node": (rss_end - rss0) / n if rss0 else math.nan,
        "rss_after_build_bytes": rss_built - rss0 if rss0 else math.nan,
        "rss_end_bytes": rss_end - rss0 if rss0 else math.nan,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "live_nodes": live,
        "wall_seconds": time.perf_counter() - t0,
        "cpu_seconds": time.process_time() - cpu0,
    }


def plot(rows: Sequence[dict[str, Any]], path: Path) -> Path | None:
    """Hops and messages per lookup vs N (log x) with the log2(N) curve; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)")
        return None
    ns = [r["nodes"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    left.plot(ns, [r["get_hops"].median for r in rows], "o-", label="get: median round trips")
    left.plot(ns, [r["find_node_hops"].median for r in rows], "s-", label="find_node: median")
    curve = [min(ns) * 2**e for e in range(0, 1 + int(math.log2(max(ns) / min(ns))))] + [max(ns)]
    left.plot(curve, [math.log2(x) for x in curve], "k--", label="log2(N)")
    left.set_xscale("log")
    left.set_xlabel("nodes N")
    left.set_ylabel("round trips per lookup")
    left.set_title("lookup hops vs N")
    left.legend()
    right.plot(ns, [r["get_messages"].median for r in rows], "o-", label="get")
    right.plot(ns, [r["find_node_messages"].median for r in rows], "s-", label="find_node")
    right.set_xscale("log")
    right.set_xlabel("nodes N")
    right.set_ylabel("datagrams per lookup (median)")
    right.set_title("messages per lookup vs N")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> int:
    """Run the scale benchmark; print a table, write JSON (and a PNG)."""
    parser = bench_parser(__doc__ or NAME)
    parser.add_argument("--sizes", help="comma-separated node counts (default per mode)")
    parser.add_argument("--lookups", type=int, help="lookups measured per N")
    parser.add_argument("--records", type=int, default=20, help="records put per N")
    parser.add_argument(
        "--build",
        choices=("prebuilt", "joins"),
        default="prebuilt",
        help="settled tables, nodes started on demand (default), or N real joins",
    )
    parser.add_argument(
        "--warmup",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="one find_node under the latency model before each measured get (default: on)",
    )
    parser.add_argument(
        "--stall-max", type=float, help="the nodes' stall_max in seconds (default: DHTConfig's)"
    )
    parser.add_argument(
        "--refresh",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="one more harness-driven far-bucket refresh round before measuring (default: off)",
    )
    parser.add_argument(
        "--tracemalloc", action="store_true", help="also trace the Python heap (5x slower build)"
    )
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args()
    sizes = (
        [int(s) for s in args.sizes.split(",")]
        if args.sizes
        else list(QUICK_SIZES if args.quick else FULL_SIZES)
    )
    lookups = args.lookups or (20 if args.quick else 100)
    refresh = bool(args.refresh)
    config = DHTConfig() if args.stall_max is None else DHTConfig(stall_max=args.stall_max)
    settings = {
        "quick": args.quick,
        "sizes": sizes,
        "lookups_per_size": lookups,
        "records_per_size": args.records,
        "refresh": refresh,
        "seed": args.seed,
        "hop_delay_s": HOP_DELAY,
        "latency_model_s": LATENCY,
        "tracemalloc": args.tracemalloc,
        "build": args.build,
        "latency_warmup": bool(args.warmup),
        "config": {
            "ksize": config.ksize,
            "alpha": config.alpha,
            "read_replicas": config.read_replicas,
            "stall_min": config.stall_min,
            "stall_max": config.stall_max,
            "rpc_timeout": config.rpc_timeout,
        },
    }
    rows: list[dict[str, Any]] = []
    for n in sizes:
        rows.append(
            run_virtual(
                run_size(
                    n,
                    seed=args.seed,
                    lookups=lookups,
                    records=args.records,
                    refresh=refresh,
                    memory=args.tracemalloc,
                    progress=not args.no_progress,
                    build=args.build,
                    warm=bool(args.warmup),
                    config=config,
                )
            )
        )
    print_table(
        "Scale: lookups over the in-memory network (virtual time)",
        [
            "N",
            "log2 N",
            "get hops p50",
            "get hops p95",
            "get msgs p50",
            "find_node hops p50",
            "find_node msgs p50",
            "get success",
            "find_node exact",
            "contacts p50",
            "build s",
            "build CPU s",
            "RSS MB built",
            "RSS MB end",
            "peak RSS MB",
            "live nodes",
            "RSS KiB/node",
            "heap KiB/node",
            "wall s",
            "CPU s",
        ],
        [
            [
                r["nodes"],
                r["log2_n"],
                r["get_hops"].median,
                r["get_hops"].p95,
                r["get_messages"].median,
                r["find_node_hops"].median,
                r["find_node_messages"].median,
                r["get_success"],
                r["find_node_exact"],
                r["routing_contacts"].median,
                r["build_seconds"],
                r["build_cpu_seconds"],
                r["rss_after_build_bytes"] / 2**20,
                r["rss_end_bytes"] / 2**20,
                r["peak_rss_bytes"] / 2**20,
                r["live_nodes"],
                r["rss_bytes_per_node"] / 1024,
                r["heap_bytes_per_node"] / 1024,
                r["wall_seconds"],
                r["cpu_seconds"],
            ]
            for r in rows
        ],
    )
    print_table(
        f"Scale: gets under a {LATENCY[0] * 1e3:.0f}-{LATENCY[1] * 1e3:.0f} ms one-way "
        "latency model (virtual time)",
        [
            "N",
            "get success",
            "wall ms p50",
            "wall ms p95",
            "rounds p50",
            "rounds p95",
            "rounds max",
            "log2 N",
            "msgs p50",
            "stalls p50",
            "secure_get ok",
            "secure_get wall p50 ÷ get",
            "secure_get msgs p50 ÷ get",
        ],
        [
            [
                r["nodes"],
                r["wide_get_success"],
                r["wide_get_wall_ms"].median,
                r["wide_get_wall_ms"].p95,
                r["wide_get_rounds"].median,
                r["wide_get_rounds"].p95,
                r["wide_get_rounds"].max,
                r["log2_n"],
                r["wide_get_messages"].median,
                r["wide_get_stalls"].median,
                r["secure_get_success"],
                r["secure_get_wall_ms"].median / r["wide_get_wall_ms"].median,
                r["secure_get_messages"].median / r["wide_get_messages"].median,
            ]
            for r in rows
        ],
    )
    write_results(args.out, NAME, settings, {"sizes": rows})
    if not args.no_plot:
        png = plot(rows, args.out / f"{NAME}.png")
        if png is not None:
            print(f"plot written to {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
