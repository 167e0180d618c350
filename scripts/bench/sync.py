"""Server list sync: how long until a fresh node holds a full list, and its bytes on the wire.

A fairdht network of N nodes (loopback, several processes) holds the announcements
of S servers (each its own key and address, spread over the SERVER_SHARDS shard
keys). A fresh node then joins and fetches the list, in three ways (fairdht_sync.py):
a raw fetch of every shard key, one round of a full node's server-list replica, and
a light client's read as ``fairdht servers`` does. Bytes are the UDP payload the
fresh node's own socket sent and received until it held the list.

    .venv/bin/python scripts/bench/sync.py [--quick] [--servers 1000,4096]
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

from benchlib import Table, bench_parser, make_doc, print_table, summarize, write_doc
from netcluster import Cluster, Op, run_ops
from systems import available_systems

from fairdht.identity import SigningKey
from fairdht.records import decode_record
from fairdht.records.kinds.server import SERVER_SHARDS
from fairdht.serverlist.announce import announcement_record, make_announcement
from fairdht.serverlist.control import shard_keys

MODES = ("raw", "replica", "light")


def server_records(count: int, network: str, *, seed: int, now: float) -> list[bytes]:
    """``count`` announcements, each by its own key at its own IPv4 address."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        body = make_announcement(
            address=f"10.{i // 250 % 250}.{i % 250}.{1 + i // 62500}:28785",
            name=f"bench server {i}",
            mode="ctf",
            map="forge",
            players=i % 16,
            max_players=16,
            game_version="0.9.1",
            tags=["eu"],
        )
        key = SigningKey(rng.randbytes(32))
        out.append(announcement_record(key, network, body, now=now).raw)
    return out


async def publish(cluster: Cluster, raws: list[bytes], *, seed: int, progress: bool) -> int:
    """Put every record from a random node, 16 at a time; how many puts were accepted."""
    rng = random.Random(seed)
    ops = [Op("put", rng.randrange(cluster.n), decode_record(r).key, value=r) for r in raws]
    results = await run_ops(cluster, ops, concurrency=16, label="publish", progress=progress)
    return sum(1 for r in results if r.ok)


async def run(args: Any, settings: dict[str, Any]) -> dict[str, Any]:
    """Publish each list size into one cluster, then time fresh nodes fetching it."""
    _, missing = available_systems("fairdht")
    if missing:
        return {"unavailable": missing, "runs": []}
    progress = not args.no_progress
    cluster = Cluster("fairdht", settings["nodes"], settings["workers"], op_timeout=300.0)
    await cluster.start()
    await cluster.bootstrap()
    await asyncio.sleep(settings["settle_s"])
    runs = []
    fresh = settings["nodes"] + 1
    try:
        for servers in settings["servers"]:
            network = f"sync{servers}"
            raws = server_records(servers, network, seed=args.seed + servers, now=time.time())
            print(f"\npublishing {servers} servers into {settings['nodes']} nodes", flush=True)
            accepted = await publish(cluster, raws, seed=args.seed, progress=progress)
            expected = per_shard_counts(raws, network)
            for mode in MODES:
                samples = []
                for rep in range(settings["reps"]):
                    rep_doc = await cluster.call(
                        cluster.workers[0],
                        "sync",
                        300.0,
                        mode=mode,
                        index=fresh,
                        network=network,
                        bootstrap=[list(cluster.addrs[0])],
                    )
                    fresh += 1
                    if "error" in rep_doc:
                        raise RuntimeError(f"sync {mode} failed: {rep_doc['error']}")
                    # Shards a raw fetch came back short on: (shard, found, published).
                    rep_doc["short_shards"] = [
                        [i, got, want]
                        for i, (got, want) in enumerate(
                            zip(rep_doc.pop("per_shard"), expected, strict=False)
                        )
                        if got < want
                    ]
                    samples.append(rep_doc)
                    print(
                        f"  {mode:<8} rep {rep + 1}: {rep_doc['held']}/{servers} held "
                        f"in {rep_doc['total_ms']:.0f} ms",
                        flush=True,
                    )
                runs.append(summarize_mode(servers, accepted, mode, samples))
    finally:
        await cluster.stop()
    return {"runs": runs, "unavailable": missing}


def per_shard_counts(raws: list[bytes], network: str) -> list[int]:
    """How many of ``raws`` live under each of the network's shard keys."""
    index = {key: i for i, key in enumerate(shard_keys(network))}
    counts = [0] * len(index)
    for raw in raws:
        counts[index[decode_record(raw).key]] += 1
    return counts


def summarize_mode(
    servers: int, accepted: int, mode: str, samples: list[dict[str, Any]]
) -> dict[str, Any]:
    """Medians (and worst case) over the repetitions of one mode and size."""
    return {
        "servers": servers,
        "published": accepted,
        "mode": mode,
        "held_min": min(s["held"] for s in samples),
        "full_list_every_time": all(s["held"] == servers for s in samples),
        "total_ms": summarize([s["total_ms"] for s in samples]).to_json(),
        "bootstrap_ms_median": summarize([s["bootstrap_ms"] for s in samples]).median,
        "fetch_ms_median": summarize([s["fetch_ms"] for s in samples]).median,
        "received_bytes_median": summarize([s["received_bytes"] for s in samples]).median,
        "sent_bytes_median": summarize([s["sent_bytes"] for s in samples]).median,
        "datagrams_median": summarize(
            [s["sent_datagrams"] + s["received_datagrams"] for s in samples]
        ).median,
        "samples": samples,
    }


def tables(doc: dict[str, Any]) -> list[Table]:
    """The table of a sync.json document."""
    res = doc["results"]
    rows: list[list[Any]] = [
        [
            r["servers"],
            r["mode"],
            f"{r['held_min']}/{r['servers']}",
            r["total_ms"]["median"],
            r["total_ms"]["max"],
            r["bootstrap_ms_median"],
            r["received_bytes_median"],
            r["sent_bytes_median"],
            r["datagrams_median"],
        ]
        for r in res["runs"]
    ]
    for system, why in res["unavailable"].items():
        rows.append(["n/a", system, why, "", "", "", "", "", ""])
    header = [
        "servers", "mode", "held (worst rep)", "median ms", "max ms", "of which bootstrap ms",
        "bytes received", "bytes sent", "datagrams",
    ]  # fmt: skip
    title = (
        f"Server list sync: a fresh node fetches the full list ({doc['settings']['nodes']} "
        f"nodes, {doc['settings']['reps']} repetitions)"
    )
    return [(title, header, rows)]


def main() -> int:
    """Run the sync benchmark, print the table and write results/sync.json."""
    parser = bench_parser(__doc__ or "")
    parser.add_argument("--servers", help="comma-separated list sizes (default 1000,4096)")
    args = parser.parse_args()
    if args.quick:
        settings: dict[str, Any] = {
            "nodes": 20, "workers": 2, "servers": [100], "reps": 1, "settle_s": 1.0,
        }  # fmt: skip
    else:
        settings = {
            "nodes": 50, "workers": 4, "servers": [1000, 4096], "reps": 3, "settle_s": 5.0,
        }  # fmt: skip
    if args.servers:
        settings["servers"] = [int(s) for s in args.servers.split(",")]
    settings["shards"] = SERVER_SHARDS
    results = asyncio.run(run(args, settings))
    doc = make_doc("sync", {**settings, "quick": args.quick}, results)
    for table in tables(doc):
        print_table(*table)
    write_doc(args.out, doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
