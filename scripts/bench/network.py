"""Loopback network: puts and gets of multi-record keys, fairdht vs kademlia vs OpenDHT.

Every system runs the same workload on the same harness in the same run: N nodes
over a few worker processes on loopback UDP, K keys of R signed server records
each, every record put from a random node, then gets from nodes that do not hold
the key. Reports p50/p99 latency, success rate, and datagrams and bytes per
operation counted at the socket level (a private network namespace per system).

Plain kademlia keeps one value per key (the last write wins), so its gets check
the newest of the R values; fairdht and OpenDHT must return all R.

On plain loopback a round trip costs microseconds, so the times measure CPU. With
``--delay-ms D`` every datagram of every system waits D ms before it is sent (a
fixed one-way delay, as netem would add), so the times measure round trips as on
the internet (issue 16: "on the internet it costs round trips").

    .venv/bin/python scripts/bench/network.py [--quick] [--sizes 50,200] [--systems ...]
        [--delay-ms D]
"""

from __future__ import annotations

import asyncio
import pstats
import random
import time
from pathlib import Path
from typing import Any

from benchlib import (
    Table,
    bench_parser,
    make_doc,
    print_table,
    ratio,
    short_path,
    write_doc,
)
from netcluster import (
    Cluster,
    KeySet,
    Op,
    OpResult,
    make_workload,
    phase_report,
    run_ops,
    worker_count,
)
from systems import available_systems


class _Side:
    """One system's cluster and its share of an interleaved run."""

    def __init__(self, system: str, nodes: int, settings: dict[str, Any], seed: int) -> None:
        self.system = system
        self.nodes = nodes
        # The same seed for every system: the same writers, keys and readers' draws.
        self.rng = random.Random(seed)
        config = settings["fairdht_config"] if system == "fairdht" else None
        self.cluster = Cluster(
            system,
            nodes,
            worker_count(nodes),
            op_timeout=settings["op_timeout"],
            config=config,
            delay_ms=settings.get("delay_ms", 0.0),
        )
        self.ready = 0
        self.boot_s = 0.0
        self.refresh_s = 0.0
        self.counters: dict[str, dict[str, int]] = {}
        self.phase_s = {"put": 0.0, "get": 0.0, "put_warm": 0.0}
        self.results: dict[str, list[OpResult]] = {"put": [], "get": [], "put_warm": []}

    async def boot(self, settle_s: float) -> None:
        t0 = time.monotonic()
        await self.cluster.start()
        self.ready = await self.cluster.bootstrap()
        await asyncio.sleep(settle_s)
        self.boot_s = time.monotonic() - t0

    async def mark(self, name: str) -> None:
        self.counters[name] = await self.cluster.counters()

    async def run_chunk(self, phase: str, ops: list[Op], progress: bool) -> None:
        t = time.monotonic()
        label = f"{self.system} n={self.nodes} {phase}s"
        self.results[phase] += await run_ops(self.cluster, ops, label=label, progress=progress)
        self.phase_s[phase] += time.monotonic() - t


async def _interleaved(
    sides: list[_Side], plans: dict[str, list[Op]], phase: str, chunk: int, progress: bool
) -> None:
    """Run each system's ops of ``phase`` in turns of ``chunk`` ops, so that load from
    other processes on a shared machine falls on every system alike."""
    total = max(len(ops) for ops in plans.values())
    for i in range(0, total, chunk):
        for side in sides:
            await side.run_chunk(phase, plans[side.system][i : i + chunk], progress=False)
        if progress:
            print(f"  {phase}s {min(i + chunk, total)}/{total}", end="\r", flush=True)
    if progress:
        print(flush=True)


async def measure_size(
    systems: list[str], nodes: int, settings: dict[str, Any], *, seed: int, progress: bool
) -> list[dict[str, Any]]:
    """Boot one cluster per system, run the workload on all of them in turns, return one
    report per system."""
    sides = [_Side(system, nodes, settings, seed) for system in systems]
    profile_dir = settings["profile_dir"]
    try:
        for side in sides:
            print(f"{side.system}: booting {nodes} nodes", flush=True)
            await side.boot(settings["settle_s"])
        now = time.time()
        warm = make_workload(2, settings["per_key"], seed=seed + 7919, now=now)
        work = make_workload(settings["keys"], settings["per_key"], seed=seed, now=now)
        for side in sides:
            # Warm-up: one put and get round on keys that are not measured.
            cluster, rng = side.cluster, side.rng
            await run_ops(cluster, put_ops(warm, nodes, rng), label="warm-up", progress=False)
            gets = await get_ops(cluster, warm, 2, rng, side.system)
            await run_ops(cluster, gets, label="warm-up", progress=False)
            # Background traffic (pings, refreshes) while idle, to read per-op counts against.
            await side.mark("idle0")
        await asyncio.sleep(settings["idle_s"])
        for side in sides:
            await side.mark("idle1")
            await side.mark("put0")
            if profile_dir:
                await asyncio.gather(
                    *(side.cluster.call(w, "profile_start") for w in side.cluster.workers)
                )
        plans = {side.system: put_ops(work, nodes, side.rng) for side in sides}
        await _interleaved(sides, plans, "put", settings["chunk"], progress)
        put_profiles: dict[str, Any] = {}
        for side in sides:
            if profile_dir:
                put_profiles[side.system] = await collect_profile(
                    side.cluster, Path(profile_dir), nodes, "put"
                )
            await side.mark("put1")
        holders_before = {}
        plans = {}
        for side in sides:
            holders_before[side.system] = {
                ks.key: await side.cluster.holders(ks.key) for ks in work
            }
            plans[side.system] = await get_ops(
                side.cluster, work, settings["gets_per_key"], side.rng, side.system
            )
            await side.mark("get0")
            if profile_dir:
                await asyncio.gather(
                    *(side.cluster.call(w, "profile_start") for w in side.cluster.workers)
                )
        await _interleaved(sides, plans, "get", settings["chunk"], progress)
        get_profiles: dict[str, Any] = {}
        for side in sides:
            await side.mark("get1")
            if profile_dir:
                get_profiles[side.system] = await collect_profile(
                    side.cluster, Path(profile_dir), nodes, "get"
                )
        if settings.get("warm_puts"):
            # A second batch of puts on new keys, once the network has served a round of
            # puts and gets: routing tables are fuller and more pairs of nodes have proved
            # each other, for every system alike. The cold figure above stays the headline.
            later = make_workload(
                settings["keys"], settings["per_key"], seed=seed + 104729, now=time.time()
            )
            warm_plans = {side.system: put_ops(later, nodes, side.rng) for side in sides}
            for side in sides:
                # A network that has run a while has refreshed every bucket (Kademlia
                # §2.3, hourly): each system does that once, on its own, before the batch.
                t = time.monotonic()
                await side.cluster.refresh()
                side.refresh_s = time.monotonic() - t
            for side in sides:
                await side.mark("warm0")
            await _interleaved(sides, warm_plans, "put_warm", settings["chunk"], progress)
            for side in sides:
                await side.mark("warm1")
        reports = []
        for side in sides:
            holders = [len(await side.cluster.holders(ks.key)) for ks in work]
            await side.mark("end")
            c, netns = side.counters, side.cluster.in_netns
            held = holders_before[side.system]
            reports.append(
                {
                    "system": side.system,
                    "nodes": nodes,
                    "workers": side.cluster.w,
                    "nodes_joined": side.ready,
                    "boot_s": side.boot_s,
                    "network_namespace": netns,
                    "put": {
                        **phase_report(side.results["put"], c["put0"], c["put1"], netns),
                        "phase_s": side.phase_s["put"],
                    },
                    "get": {
                        **phase_report(side.results["get"], c["get0"], c["get1"], netns),
                        "phase_s": side.phase_s["get"],
                    },
                    **(
                        {
                            "put_warm": {
                                **phase_report(
                                    side.results["put_warm"], c["warm0"], c["warm1"], netns
                                ),
                                "phase_s": side.phase_s["put_warm"],
                                "refresh_s": side.refresh_s,
                            }
                        }
                        if side.results["put_warm"]
                        else {}
                    ),
                    "gets_from_holders": sum(
                        1 for op in plans[side.system] if op.node in held[op.key]
                    ),
                    "idle_datagrams_per_s": (
                        (c["idle1"].get("lo_tx_packets", 0) - c["idle0"].get("lo_tx_packets", 0))
                        / settings["idle_s"]
                        if netns
                        else None
                    ),
                    "holders_per_key_mean": sum(holders) / len(holders) if holders else None,
                    "resources": resources(
                        c["put0"],
                        c["put1"],
                        c["get0"],
                        c["get1"],
                        c["end"],
                        nodes,
                        len(side.results["put"]),
                        len(side.results["get"]),
                    ),
                    "get_profile": get_profiles.get(side.system),
                    "put_profile": put_profiles.get(side.system),
                }
            )
        return reports
    finally:
        for side in sides:
            await side.cluster.stop()


def resources(
    c0: dict[str, int],
    c1: dict[str, int],
    c1b: dict[str, int],
    c2: dict[str, int],
    c3: dict[str, int],
    nodes: int,
    puts: int,
    gets: int,
) -> dict[str, float | None]:
    """CPU per operation (every worker's, so the whole network's work for it, background
    included) and resident memory per node over and above the workers' interpreters."""
    if "cpu_us" not in c3:
        return {"put_cpu_ms_per_op": None, "get_cpu_ms_per_op": None, "rss_kib_per_node": None}
    return {
        "put_cpu_ms_per_op": (c1["cpu_us"] - c0["cpu_us"]) / 1e3 / puts if puts else None,
        "get_cpu_ms_per_op": (c2["cpu_us"] - c1b["cpu_us"]) / 1e3 / gets if gets else None,
        "rss_kib_per_node": (c3["rss_kib"] - c3["rss_base_kib"]) / nodes,
        "rss_kib_total": float(c3["rss_kib"]),
    }


async def collect_profile(
    cluster: Cluster, out: Path, nodes: int, phase: str
) -> list[dict[str, Any]]:
    """Stop the workers' profilers; the functions with the most own time over all workers."""
    paths = [
        out / f"{cluster.system}-n{nodes}-{phase}-w{i}.pstats" for i in range(len(cluster.workers))
    ]
    await asyncio.gather(
        *(
            cluster.call(w, "profile_stop", path=str(p))
            for w, p in zip(cluster.workers, paths, strict=True)
        )
    )
    stats = pstats.Stats(*[str(p) for p in paths if p.exists()])
    entries = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in entries.values()) or 1.0
    rows = [
        {
            "function": f"{short_path(file)}:{line}({fn})",
            "calls": ncalls,
            "own_time_share": tottime / total,
            "cumulative_share": cumtime / total,
        }
        for (file, line, fn), (_cc, ncalls, tottime, cumtime, _callers) in entries.items()
    ]
    rows.sort(key=lambda r: r["own_time_share"], reverse=True)
    return rows[:25]


def put_ops(work: list[KeySet], nodes: int, rng: random.Random) -> list[Op]:
    """One put per record, each from a random node."""
    return [Op("put", rng.randrange(nodes), ks.key, value=v) for ks in work for v in ks.values]


def expected(ks: KeySet, system: str) -> tuple[bytes, ...]:
    """What a complete get returns: every record, or for plain kademlia the newest value."""
    return (ks.values[-1],) if system == "kademlia" else ks.values


async def get_ops(
    cluster: Cluster, work: list[KeySet], per_key: int, rng: random.Random, system: str
) -> list[Op]:
    """``per_key`` gets of each key, from distinct alive nodes that do not hold it."""
    ops = []
    alive = cluster.alive_nodes()
    for ks in work:
        held = await cluster.holders(ks.key)
        readers = [i for i in alive if i not in held] or alive
        for node in rng.sample(readers, min(per_key, len(readers))):
            ops.append(Op("get", node, ks.key, expect=expected(ks, system)))
    return ops


HEADER = (
    "nodes", "system", "get p50 ms", "get p99 ms", "get ok", "get datagrams", "get bytes",
    "put p50 ms", "put p99 ms", "put ok", "put datagrams", "put bytes", "notes",
)  # fmt: skip


def notes(run: dict[str, Any]) -> str:
    """Replicas per key and how failed gets failed."""
    g = run["get"]
    parts = [f"{run['holders_per_key_mean']:.1f} holders/key"]
    if g.get("failed_incomplete"):
        parts.append(f"{g['failed_incomplete']} gets stale or incomplete")
    if g.get("failed_empty"):
        parts.append(f"{g['failed_empty']} gets empty")
    if g["errors"]:
        parts.append("errors: " + ", ".join(f"{k} {v}" for k, v in g["errors"].items()))
    return "; ".join(parts)


def table_rows(runs: list[dict[str, Any]]) -> list[list[Any]]:
    """One table row per (size, system)."""
    rows = []
    for r in runs:
        if "skipped" in r:
            rows.append([r["nodes"], r["system"], *["n/a"] * 10, r["skipped"]])
            continue
        p, g = r["put"], r["get"]
        rows.append(
            [
                r["nodes"],
                r["system"],
                g["latency_ms"]["median"],
                g["latency_ms"]["p99"],
                g["success_rate"],
                g["datagrams_per_op"],
                g["bytes_per_op"],
                p["latency_ms"]["median"],
                p["latency_ms"]["p99"],
                p["success_rate"],
                p["datagrams_per_op"],
                p["bytes_per_op"],
                notes(r),
            ]
        )
    return rows


COST_HEADER = (
    "nodes", "get p50 ms", "net of verify p50 ms", "records verified per get",
    "verify ms per get", "nodes asked per get", "rounds p50", "rounds p95", "rounds max",
)  # fmt: skip


def cost_rows(runs: list[dict[str, Any]]) -> list[list[Any]]:
    """One row per fairdht run that reported per-get detail."""
    rows = []
    for r in runs:
        g = r.get("get", {})
        if r.get("system") != "fairdht" or "net_of_verify_ms" not in g:
            continue
        rows.append(
            [
                r["nodes"],
                g["latency_ms"]["median"],
                g["net_of_verify_ms"]["median"],
                g["verified_per_op"],
                g["verify_ms_per_op"],
                g["queries_per_op"],
                g["rounds"]["median"],
                g["rounds"]["p95"],
                g["rounds"]["max"],
            ]
        )
    return rows


PUT_HEADER = (
    "nodes", "system", "puts", "put p50 ms", "put p99 ms", "put ok", "datagrams per put",
    "lookup ms per put", "STOREs ms per put", "challenge pings", "presentation pings",
    "presentations", "STOREs waiting on one", "token refusals", "token retries",
)  # fmt: skip


def put_rows(runs: list[dict[str, Any]]) -> list[list[Any]]:
    """One row per (size, system, cold or warm batch): what a put cost, with fairdht's
    counters per put (mean over the batch; lookup and STORE times are means, not p50)."""
    rows = []
    for r in runs:
        for phase, label in (("put", "cold"), ("put_warm", "warm")):
            p = r.get(phase)
            if not p:
                continue
            c = p.get("counters_per_op", {})

            def get(name: str, c: dict[str, Any] = c) -> Any:
                value = c.get(name)
                return "n/a" if value is None else value

            def ms(name: str, c: dict[str, Any] = c) -> Any:
                value = c.get(name)
                return "n/a" if value is None else value / 1e3

            rows.append(
                [
                    r["nodes"],
                    r["system"],
                    label,
                    p["latency_ms"]["median"],
                    p["latency_ms"]["p99"],
                    p["success_rate"],
                    p["datagrams_per_op"],
                    ms("put.lookup_us"),
                    ms("put.stores_us"),
                    get("ping.why.challenge"),
                    get("ping.why.present"),
                    get("present.started"),
                    get("store.waited_present"),
                    get("store.refused.token"),
                    get("store.retry.token"),
                ]
            )
    return rows


def ratios(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """fairdht's get/put p50 and traffic relative to each anchor, per size."""
    out: dict[str, dict[str, float]] = {}
    by = {(r["nodes"], r["system"]): r for r in runs if "skipped" not in r}
    for (nodes, system), r in by.items():
        if system == "fairdht":
            continue
        f = by.get((nodes, "fairdht"))
        if f is None:
            continue
        net = f["get"].get("net_of_verify_ms")
        out[f"n{nodes}_fairdht_vs_{system}"] = {
            "get_p50": ratio(f["get"]["latency_ms"]["median"], r["get"]["latency_ms"]["median"]),
            "get_p50_net_of_verify": ratio(
                net["median"] if net else float("nan"), r["get"]["latency_ms"]["median"]
            ),
            "get_p99": ratio(f["get"]["latency_ms"]["p99"], r["get"]["latency_ms"]["p99"]),
            "put_p50": ratio(f["put"]["latency_ms"]["median"], r["put"]["latency_ms"]["median"]),
            **(
                {
                    "put_warm_p50": ratio(
                        f["put_warm"]["latency_ms"]["median"],
                        r["put_warm"]["latency_ms"]["median"],
                    )
                }
                if "put_warm" in f and "put_warm" in r
                else {}
            ),
            "get_datagrams": ratio(
                f["get"]["datagrams_per_op"] or float("nan"),
                r["get"]["datagrams_per_op"] or float("nan"),
            ),
            "get_bytes": ratio(
                f["get"]["bytes_per_op"] or float("nan"), r["get"]["bytes_per_op"] or float("nan")
            ),
        }
    return out


async def run(args: Any, settings: dict[str, Any]) -> dict[str, Any]:
    """Every size, every system, one after the other in this run."""
    systems, missing = available_systems(args.systems)
    if settings.get("delay_ms") and "opendht" in systems:
        # Its sockets live in C++, out of reach of the harness's delaying transport.
        systems.remove("opendht")
        missing["opendht"] = "--delay-ms needs sockets the harness wraps; OpenDHT's are C++"
    runs: list[dict[str, Any]] = []
    for nodes in settings["sizes"]:
        print(f"\n{nodes} nodes: {', '.join(systems)}, interleaved", flush=True)
        runs += await measure_size(
            systems, nodes, settings, seed=args.seed, progress=not args.no_progress
        )
        for system, why in missing.items():
            runs.append({"system": system, "nodes": nodes, "skipped": why})
    return {"runs": runs, "ratios": ratios(runs), "unavailable": missing}


def parse_overrides(text: str) -> dict[str, float]:
    """``name=value,...`` into a map of numbers (ints where they are whole)."""
    out: dict[str, float] = {}
    for item in filter(None, text.split(",")):
        name, _, value = item.partition("=")
        number = float(value)
        out[name.strip()] = int(number) if number.is_integer() else number
    return out


def tables(doc: dict[str, Any]) -> list[Table]:
    """The tables of a network.json document."""
    res = doc["results"]
    delay = doc["settings"].get("delay_ms", 0.0)
    where = f"loopback with a {delay:g} ms one-way delay" if delay else "Loopback network"
    out: list[Table] = [
        (
            f"{where}: gets from non-holders and puts of multi-record keys",
            HEADER,
            table_rows(res["runs"]),
        )
    ]
    used = [
        [
            r["nodes"],
            r["system"],
            r["workers"],
            r["boot_s"],
            r["resources"]["put_cpu_ms_per_op"],
            r["resources"]["get_cpu_ms_per_op"],
            r["resources"]["rss_kib_per_node"],
        ]
        for r in res["runs"]
        if "skipped" not in r and r.get("resources", {}).get("rss_kib_per_node") is not None
    ]
    if used:
        out.append(
            (
                "Resources: CPU per operation over all workers, memory per node",
                [
                    "nodes",
                    "system",
                    "worker processes",
                    "boot s",
                    "put CPU ms/op",
                    "get CPU ms/op",
                    "RSS KiB/node",
                ],
                used,
            )
        )
    puts = put_rows(res["runs"])
    if puts:
        out.append(
            (
                "Puts, cold (seconds after boot) and warm (after a round of puts and gets "
                "and one refresh of every bucket)",
                PUT_HEADER,
                puts,
            )
        )
    cost = cost_rows(res["runs"])
    if cost:
        out.append(
            (
                "What a fairdht get costs: verification, nodes asked, sequential rounds",
                COST_HEADER,
                cost,
            )
        )
    if res["ratios"]:
        out.append(
            (
                "fairdht relative to the anchors (< 1 means fairdht is faster / leaner)",
                [
                    "comparison",
                    "get p50",
                    "get p50 net of verify",
                    "get p99",
                    "put p50",
                    "put p50 warm",
                    "get datagrams",
                    "get bytes",
                ],
                [
                    [
                        n,
                        r["get_p50"],
                        r.get("get_p50_net_of_verify", float("nan")),
                        r["get_p99"],
                        r["put_p50"],
                        r.get("put_warm_p50", float("nan")),
                        r["get_datagrams"],
                        r["get_bytes"],
                    ]
                    for n, r in res["ratios"].items()
                ],
            )
        )
    for run in res["runs"]:
        for phase in ("get", "put"):
            if run.get(f"{phase}_profile"):
                out.append(
                    (
                        f"Where {run['system']}'s workers spend the {phase} phase "
                        f"({run['nodes']} nodes, cProfile, own time)",
                        ["function", "calls", "own time", "cumulative"],
                        [
                            [p["function"], p["calls"], p["own_time_share"], p["cumulative_share"]]
                            for p in run[f"{phase}_profile"][:15]
                        ],
                    )
                )
    return out


def main() -> int:
    """Run the network benchmark, print the table and write results/network.json."""
    parser = bench_parser(__doc__ or "")
    parser.add_argument("--sizes", help="comma-separated node counts (default 50,200)")
    parser.add_argument("--systems", help="comma-separated subset of fairdht,kademlia,opendht")
    parser.add_argument(
        "--fairdht-config",
        default="",
        help="DHTConfig overrides for fairdht, e.g. read_replicas=1,alpha=3 (default: shipped)",
    )
    parser.add_argument(
        "--warm-puts",
        action="store_true",
        help="after the gets, every node refreshes every bucket once (Kademlia §2.3), "
        "then puts a second batch of new keys (a warm network), every system alike; "
        "reported next to the cold puts",
    )
    parser.add_argument(
        "--delay-ms",
        type=float,
        default=0.0,
        help="hold every datagram this long before sending it, every system alike: "
        "a one-way delay on every path, so a get costs round trips as on the internet "
        "and not only CPU (default 0: plain loopback)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="cProfile every worker during the gets and write .pstats files here "
        "(profiling slows the gets: do not quote the latencies of such a run)",
    )
    args = parser.parse_args()
    if args.quick:
        settings: dict[str, Any] = {
            "sizes": [30], "keys": 3, "per_key": 3, "gets_per_key": 3,
            "settle_s": 1.0, "idle_s": 0.5, "op_timeout": 20.0, "chunk": 5,
        }  # fmt: skip
    else:
        settings = {
            "sizes": [50, 200], "keys": 50, "per_key": 4, "gets_per_key": 4,
            "settle_s": 10.0, "idle_s": 2.0, "op_timeout": 30.0, "chunk": 10,
        }  # fmt: skip
    if args.sizes:
        settings["sizes"] = [int(s) for s in args.sizes.split(",")]
    settings["fairdht_config"] = parse_overrides(args.fairdht_config)
    settings["profile_dir"] = str(args.profile) if args.profile else None
    settings["warm_puts"] = args.warm_puts
    settings["delay_ms"] = args.delay_ms
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    results = asyncio.run(run(args, settings))
    doc = make_doc("network", {**settings, "quick": args.quick}, results)
    for table in tables(doc):
        print_table(*table)
    write_doc(args.out, doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
