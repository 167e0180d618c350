"""Adversaries: lookup success when 10% or 20% of nodes drop or corrupt replies (issues 8, 9).

Each scenario builds a fresh seeded network of N real DHTNodes on the in-memory network
in virtual time, turns a seeded fraction of them hostile (fairdht.sim.adversary:
``drop``, ``corrupt``, ``eclipse``), lets honest nodes put records, then gets each from
random honest nodes (``forge`` also claims made-up ids next to each target). A get succeeds when it returns the record that was put. Every
record a get returns is compared with the records honest authors signed: a corrupted
or forged record in a result is counted (it must stay 0).

S/Kademlia reports 99% lookup success with 20% adversaries using disjoint paths
(Baumgart & Mies 2007, §5). Every attack runs with plain lookups
(``DHTConfig.disjoint_paths=0``) and with ``--disjoint`` paths (default 4; --quick
only at 20%).

    .venv/bin/python scripts/bench/adversary.py [--quick] [--nodes 500] [--disjoint 4]
"""

from __future__ import annotations

import time
from typing import Any

from benchlib import Progress, bench_parser, print_table, summarize, write_results

from fairdht.dht import DHTConfig
from fairdht.errors import NetworkError
from fairdht.records import Record
from fairdht.sim import run_virtual, virtual_clock
from fairdht.sim.adversary import Behaviour, Coalition
from fairdht.sim.harness import SimSpec, Simulation
from fairdht.sim.workload import server_record

NAME = "adversary"
FRACTIONS = (0.1, 0.2)
BEHAVIOURS = (Behaviour.DROP, Behaviour.CORRUPT, Behaviour.ECLIPSE, Behaviour.FORGE)
# What the honest nodes' defences did during the puts and gets (docs/security.md,
# "Hostile lookups"): queries failed because the answer was signed by another id, made-up
# ids refused unasked at an address that proved another, second ids dropped from one
# lookup's shortlist at an address it already held; and what the gets cost: queries
# sent, replicas no longer read after too many bad records.
HONEST_COUNTERS = (
    "lookup.unproven_id",
    "lookup.refused.address_taken",
    "lookup.duplicate_address",
    "get.queries",
    "get.replica_dropped",
)


def honest_counts(sim: Simulation, honest: list[int]) -> dict[str, int]:
    """``HONEST_COUNTERS`` summed over the honest nodes."""
    out = dict.fromkeys(HONEST_COUNTERS, 0)
    for i in honest:
        metrics = sim.nodes[i].metrics
        for name in HONEST_COUNTERS:
            out[name] += metrics.get(name)
    return out


async def run_scenario(
    *,
    nodes: int,
    fraction: float,
    behaviour: Behaviour | None,
    disjoint: int,
    seed: int,
    records: int,
    gets: int,
    refresh: bool,
) -> dict[str, Any]:
    """One network, one coalition: put ``records`` and run ``gets`` reads; the numbers."""
    config = DHTConfig(disjoint_paths=disjoint)
    sim = Simulation(SimSpec(nodes=nodes, seed=seed, config=config))
    await sim.build()
    if refresh:
        await sim.refresh_tables()
    hostile = sim.sample(round(nodes * fraction)) if behaviour is not None else []
    honest = [i for i in range(nodes) if i not in set(hostile)]
    coalition = Coalition(
        sim.net,
        [(sim.keys[i].node_id, sim.addresses[i]) for i in hostile],
        behaviour or Behaviour.DROP,
        seed=seed,
        ksize=config.ksize,
    )
    if hostile:
        coalition.install()
    clock = virtual_clock()
    before = honest_counts(sim, honest)
    put: list[Record] = []
    put_failures = 0
    for j in range(records):
        i = honest[sim.rng.randrange(len(honest))]
        record = server_record(sim.keys[i], now=clock(), subkey=b"adv%d" % j, port=7000 + j)
        try:
            await sim.nodes[i].put(record)
        except NetworkError:
            put_failures += 1
        put.append(record)
    signed = {r.raw for r in put}
    found = foreign = errors = 0
    seconds: list[float] = []
    for _ in range(gets):
        record = put[sim.rng.randrange(len(put))]
        i = honest[sim.rng.randrange(len(honest))]
        t0 = clock()
        try:
            got = await sim.nodes[i].get(record.key)
        except NetworkError:
            got = []
            errors += 1
        seconds.append(clock() - t0)
        foreign += sum(1 for r in got if r.raw not in signed)
        found += record in got
    after = honest_counts(sim, honest)
    invalid = sum(
        n
        for node in sim.nodes
        for name, n in node.metrics.snapshot().items()
        if name.startswith("get.invalid.")
    )
    await sim.stop()
    return {
        "nodes": nodes,
        "behaviour": behaviour.value if behaviour is not None else "none",
        "adversary_fraction": fraction if behaviour is not None else 0.0,
        "adversaries": len(hostile),
        "disjoint_paths": disjoint,
        "records_put": records,
        "put_failures": put_failures,
        "gets": gets,
        "get_success": found / gets if gets else 0.0,
        "get_errors": errors,
        "get_virtual_seconds": summarize(seconds),
        "foreign_records_returned": foreign,
        "invalid_records_dropped": invalid,
        "attack": dict(sorted(coalition.stats.items())),
        # Over the puts and gets of this scenario, not the joins before them.
        "honest": {name: after[name] - before[name] for name in HONEST_COUNTERS},
    }


def main() -> int:
    """Run every scenario; print a table and write JSON."""
    parser = bench_parser(__doc__ or NAME)
    parser.add_argument("--nodes", type=int, help="nodes per network (default 48 quick, 500)")
    parser.add_argument("--gets", type=int, help="reads per scenario")
    parser.add_argument("--records", type=int, help="records put per scenario")
    parser.add_argument(
        "--refresh", action="store_true", help="one more far-bucket refresh round after joining"
    )
    parser.add_argument("--disjoint", type=int, default=4, help="disjoint paths to compare")
    args = parser.parse_args()
    nodes = args.nodes or (48 if args.quick else 500)
    gets = args.gets or (20 if args.quick else 200)
    records = args.records or (8 if args.quick else 50)
    refresh = bool(args.refresh)
    scenarios: list[tuple[float, Behaviour | None, int]] = [(0.0, None, 0)]
    scenarios += [(f, b, 0) for f in FRACTIONS for b in BEHAVIOURS]
    disjoint_fractions = FRACTIONS[-1:] if args.quick else FRACTIONS
    scenarios += [(f, b, args.disjoint) for f in disjoint_fractions for b in BEHAVIOURS]
    settings = {
        "quick": args.quick,
        "nodes": nodes,
        "gets_per_scenario": gets,
        "records_per_scenario": records,
        "join_refresh": refresh,
        "seed": args.seed,
        "disjoint_paths": args.disjoint,
    }
    bar = Progress("adversary scenarios", len(scenarios), enabled=not args.no_progress)
    rows: list[dict[str, Any]] = []
    for fraction, behaviour, disjoint in scenarios:
        t0 = time.perf_counter()
        row = run_virtual(
            run_scenario(
                nodes=nodes,
                fraction=fraction,
                behaviour=behaviour,
                disjoint=disjoint,
                seed=args.seed,
                records=records,
                gets=gets,
                refresh=refresh,
            )
        )
        row["wall_seconds"] = time.perf_counter() - t0
        rows.append(row)
        bar.step()
    bar.close()
    print_table(
        f"Adversaries: get success with N = {nodes}",
        [
            "behaviour",
            "adversaries",
            "disjoint paths",
            "get success",
            "get p95 s (virtual)",
            "put failures",
            "forged records returned",
            "invalid records dropped",
            "queries per get",
            "unproven ids / refused unasked",
        ],
        [
            [
                r["behaviour"],
                f"{r['adversaries']} ({r['adversary_fraction']:.0%})",
                r["disjoint_paths"],
                r["get_success"],
                r["get_virtual_seconds"].p95,
                r["put_failures"],
                r["foreign_records_returned"],
                r["invalid_records_dropped"],
                r["honest"]["get.queries"] / max(1, r["gets"]),
                f"{r['honest']['lookup.unproven_id']} / "
                f"{r['honest']['lookup.refused.address_taken']}",
            ]
            for r in rows
        ],
    )
    write_results(args.out, NAME, settings, {"scenarios": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
