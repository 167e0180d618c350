"""A benchmark worker process: hosts some nodes of one system, driven by JSON lines.

The harness (netcluster.py) starts several of these, writes one JSON command per
line on stdin and reads one JSON reply per line (same ``id``) on stdout. Commands
run concurrently. Latencies are measured here, around the system's own call, with
perf_counter_ns. Not meant to be run by hand.

    networker.py --system kademlia [--netns new|/proc/PID/ns/net]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import sys
import time
from typing import Any

from netnodes import SYSTEMS, NodeGroup, make_group
from netns import enter_namespace, loopback_counters, new_namespace


def resident_kib() -> int:
    """This process's resident memory in KiB (Linux /proc/self/statm); 0 elsewhere."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    except (OSError, ValueError, IndexError):
        return 0


def process_counters(base_rss_kib: int) -> dict[str, int]:
    """CPU time (µs, user + system) and resident memory of this worker, with the
    resident memory it had before it started any node."""
    return {
        "cpu_us": int(time.process_time() * 1e6),
        "rss_kib": resident_kib(),
        "rss_base_kib": base_rss_kib,
    }


class Worker:
    """Dispatches the harness's commands to one node group."""

    def __init__(self, group: NodeGroup, in_namespace: bool) -> None:
        self.group = group
        self.in_namespace = in_namespace
        self.done = asyncio.Event()
        self.profiler: cProfile.Profile | None = None
        self.base_rss_kib = resident_kib()  # the interpreter and imports, before any node

    async def handle(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Run one command; its reply (``error`` set when the operation raised)."""
        op = cmd["op"]
        group = self.group
        if op == "start":
            addrs = await group.start(cmd["indices"])
            return {"addrs": [list(a) for a in addrs]}
        if op == "bootstrap":
            ready = await group.bootstrap([(h, int(p)) for h, p in cmd["addrs"]])
            return {"ready": ready}
        if op == "put":
            try:
                ok, ns = await group.put(
                    cmd["node"], bytes.fromhex(cmd["key"]), bytes.fromhex(cmd["value"])
                )
            except Exception as exc:  # the system's failure is a measured outcome
                return {"ok": False, "ns": None, "error": f"{type(exc).__name__}: {exc}"[:200]}
            return {"ok": ok, "ns": ns, "error": None}
        if op == "get":
            expect = set(cmd["expect"])
            detail: dict[str, Any] | None = None
            try:
                detailed = getattr(group, "get_detailed", None)
                if detailed is not None:
                    values, ns, detail = await detailed(cmd["node"], bytes.fromhex(cmd["key"]))
                else:
                    values, ns = await group.get(cmd["node"], bytes.fromhex(cmd["key"]))
            except Exception as exc:
                return {
                    "found": 0,
                    "returned": 0,
                    "ns": None,
                    "error": f"{type(exc).__name__}: {exc}"[:200],
                }
            found = len(expect & {v.hex() for v in values})
            return {
                "found": found,
                "returned": len(values),
                "ns": ns,
                "error": None,
                "detail": detail,
            }
        if op == "holds":
            key = bytes.fromhex(cmd["key"])
            return {"nodes": [i for i in cmd["nodes"] if await group.holds(i, key)]}
        if op == "refresh":
            refresh = getattr(group, "refresh", None)
            if refresh is None:
                return {"error": "this system has no refresh"}
            await refresh()
            return {"refreshed": True}
        if op == "counters":
            counts = group.counters.snapshot()
            totals = getattr(group, "metric_totals", None)
            if totals is not None:
                counts.update(totals())
            counts.update(process_counters(self.base_rss_kib))
            if self.in_namespace:
                counts.update(loopback_counters())
            return {"counters": counts}
        if op == "sync":
            from fairdht_nodes import FairDHTGroup
            from fairdht_sync import fresh_sync

            if not isinstance(group, FairDHTGroup):
                return {"error": "sync runs on fairdht nodes only"}
            return await fresh_sync(
                group,
                mode=cmd["mode"],
                index=cmd["index"],
                network=cmd["network"],
                bootstrap=cmd["bootstrap"],
            )
        if op == "profile_start":
            self.profiler = cProfile.Profile()
            self.profiler.enable()
            return {"profiling": True}
        if op == "profile_stop":
            if self.profiler is None:
                return {"error": "not profiling"}
            self.profiler.disable()
            self.profiler.dump_stats(cmd["path"])  # marshal format, read by pstats
            self.profiler = None
            return {"path": cmd["path"]}
        if op == "stop":
            await group.stop()
            self.done.set()
            return {"stopped": True}
        return {"error": f"unknown op {op!r}"}

    async def serve(self) -> None:
        """Read commands from stdin until ``stop`` or end of input."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=2**24)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        tasks: set[asyncio.Task[None]] = set()
        reply({"id": 0, "ready": True, "pid": os.getpid(), "netns": self.in_namespace})
        while not self.done.is_set():
            line = await reader.readline()
            if not line:
                # The harness is gone: leave at once, even with a system call hung in a
                # thread (OpenDHT's blocking calls never time out on their own).
                sys.stdout.flush()
                os._exit(0)
            cmd = json.loads(line)
            task = asyncio.create_task(self._run(cmd))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        for task in list(tasks):
            await task
        if self.done.is_set():
            sys.stdout.flush()
            os._exit(0)  # stopped: do not wait for threads a system left behind

    async def _run(self, cmd: dict[str, Any]) -> None:
        try:
            result = await self.handle(cmd)
        except Exception as exc:
            result = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        reply({"id": cmd["id"], **result})


def reply(doc: dict[str, Any]) -> None:
    """Write one JSON reply line."""
    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()


def main() -> int:
    """Enter the namespace, start the event loop and serve commands."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--system", choices=SYSTEMS, required=True)
    parser.add_argument("--netns", default="none", help="none, new, or a namespace path to join")
    parser.add_argument("--config", default="{}", help="JSON map of fairdht DHTConfig fields")
    parser.add_argument(
        "--delay-ms", type=float, default=0.0, help="one-way delay of every datagram sent"
    )
    args = parser.parse_args()
    # Namespaces are per thread: switch before the event loop or any library starts one.
    if args.netns == "new":
        new_namespace()
    elif args.netns != "none":
        enter_namespace(args.netns)
    group = make_group(args.system, json.loads(args.config))
    if args.delay_ms and args.system == "opendht":
        parser.error("--delay-ms: OpenDHT's sockets cannot be wrapped")
    group.counters.delay_s = args.delay_ms / 1000
    worker = Worker(group, in_namespace=args.netns != "none")
    try:
        import uvloop
    except ImportError:
        asyncio.run(worker.serve())
    else:
        # The anchors were measured with uvloop (ANCHORS.md); every system gets it.
        uvloop.run(worker.serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
