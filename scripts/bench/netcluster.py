"""The loopback network harness: worker processes, the shared workload and its measures.

One ``Cluster`` is N nodes of one system spread over W worker processes
(networker.py), node i in worker i mod W. When the machine allows it the workers
share a fresh network namespace, so the namespace's loopback counters are the
system's traffic, counted at the socket level (netns.py).
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchlib import Progress, summarize

from fairdht.identity import SigningKey
from fairdht.records import Record, sign_record
from fairdht.records.kinds.server import SERVER_KIND, ServerAnnouncement, server_shard

__all__ = [
    "Cluster",
    "KeySet",
    "Op",
    "OpResult",
    "make_workload",
    "phase_report",
    "run_ops",
    "worker_count",
]

WORKER = Path(__file__).resolve().parent / "networker.py"


@dataclass(frozen=True, slots=True)
class KeySet:
    """One DHT key and the records (signed server announcements) stored under it."""

    key: bytes
    values: tuple[bytes, ...]


def _shard0_subkey(author: bytes) -> bytes:
    # Server records land on one of 32 shard keys; pick the subkey that maps to
    # shard 0 so every author of a network shares one key (a multi-record key).
    for n in range(10_000):
        subkey = f"s{n}".encode()
        if server_shard(author, subkey) == 0:
            return subkey
    raise RuntimeError("no subkey maps to shard 0")


def make_workload(keys: int, per_key: int, *, seed: int, now: float) -> list[KeySet]:
    """``keys`` multi-record keys, each with ``per_key`` records of distinct authors."""
    rng = random.Random(seed)
    out = []
    for k in range(keys):
        network = f"bench{seed}-{k}"
        records: list[Record] = []
        for j in range(per_key):
            key = SigningKey(rng.randbytes(32))
            body = ServerAnnouncement(
                address=f"10.{k % 250}.{j % 250}.1:28785",
                name=f"bench server {k}-{j}",
                mode="ctf",
                map="forge",
                players=j % 16,
                max_players=16,
                game_version="0.9.1",
                tags=("eu",),
            )
            subkey = _shard0_subkey(key.public_key.raw)
            records.append(sign_record(key, SERVER_KIND, network, subkey, body, now=now))
        assert len({r.key for r in records}) == 1
        out.append(KeySet(records[0].key, tuple(r.raw for r in records)))
    return out


@dataclass(frozen=True, slots=True)
class Op:
    """One operation of the workload: a put of one value or a get of a key."""

    kind: str  # "put" or "get"
    node: int
    key: bytes
    value: bytes = b""
    expect: tuple[bytes, ...] = ()


@dataclass(slots=True)
class OpResult:
    """What one operation did: success, latency (ms) and any error text."""

    op: Op
    ok: bool
    ms: float
    error: str | None = None
    started: float = 0.0
    returned: int = 0  # values a get returned (valid or not)
    # fairdht gets: records verified for the first time and the ns that took, nodes
    # queried, sequential rounds (None for the other systems).
    detail: dict[str, Any] | None = None


@dataclass
class _Worker:
    proc: asyncio.subprocess.Process
    nodes: list[int]
    pending: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    alive: bool = True
    reader: asyncio.Task[None] | None = None


class Cluster:
    """N nodes of one system over W worker processes, driven over JSON lines."""

    def __init__(
        self,
        system: str,
        nodes: int,
        workers: int,
        *,
        netns: bool = True,
        op_timeout: float = 30.0,
        config: dict[str, float] | None = None,
        delay_ms: float = 0.0,
    ) -> None:
        self.system = system
        self.delay_ms = delay_ms
        self.n = nodes
        self.w = min(workers, nodes)
        self.want_netns = netns
        self.in_netns = False
        self.op_timeout = op_timeout
        self.config = dict(config or {})
        self.workers: list[_Worker] = []
        self.addrs: dict[int, tuple[str, int]] = {}
        self._next_id = 1
        self.log_dir = Path(tempfile.mkdtemp(prefix=f"bench-{system}-"))

    async def _spawn(self, index: int, netns: str) -> _Worker | None:
        # The worker inherits the file; the harness closes its own copy at once.
        log = open(self.log_dir / f"worker{index}.log", "ab")  # noqa: SIM115, ASYNC230
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(WORKER),
            "--system",
            self.system,
            "--netns",
            netns,
            "--config",
            json.dumps(self.config),
            "--delay-ms",
            str(self.delay_ms),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            limit=2**24,
        )
        log.close()
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
        except TimeoutError:
            line = b""
        if not line:
            await proc.wait()
            return None
        worker = _Worker(proc, [i for i in range(self.n) if i % self.w == index])
        worker.reader = asyncio.create_task(self._read(worker))
        return worker

    async def _read(self, worker: _Worker) -> None:
        assert worker.proc.stdout is not None
        while True:
            line = await worker.proc.stdout.readline()
            if not line:
                break
            doc = json.loads(line)
            fut = worker.pending.pop(doc.get("id", -1), None)
            if fut is not None and not fut.done():
                fut.set_result(doc)
        worker.alive = False
        for fut in worker.pending.values():
            if not fut.done():
                fut.set_result({"error": "worker died"})
        worker.pending.clear()

    async def start(self) -> None:
        """Spawn the workers (in a shared namespace when allowed) and start every node."""
        first = await self._spawn(0, "new") if self.want_netns else None
        if first is not None:
            self.in_netns = True
            path = f"/proc/{first.proc.pid}/ns/net"
        else:
            first = await self._spawn(0, "none")
            path = "none"
        if first is None:
            raise RuntimeError(f"{self.system} worker did not start; see {self.log_dir}")
        rest = await asyncio.gather(*(self._spawn(i, path) for i in range(1, self.w)))
        if any(r is None for r in rest):
            raise RuntimeError(f"{self.system} worker did not start; see {self.log_dir}")
        self.workers = [first, *[r for r in rest if r is not None]]
        replies = await asyncio.gather(
            *(self.call(w, "start", 120, indices=w.nodes) for w in self.workers)
        )
        for w, rep in zip(self.workers, replies, strict=True):
            if "addrs" not in rep:
                raise RuntimeError(f"{self.system} nodes did not start: {rep.get('error')}")
            for i, (host, port) in zip(w.nodes, rep["addrs"], strict=True):
                self.addrs[i] = (host, int(port))

    async def bootstrap(self, entries: int = 1) -> int:
        """Join every node through the first ``entries`` nodes (a star, as in ANCHORS.md)."""
        seeds = [list(self.addrs[i]) for i in range(entries)]
        first = self.workers[0]
        # The entry nodes join among themselves first, then everyone else in parallel.
        first_reply = await self.call(first, "bootstrap", 120, addrs=seeds)
        replies = await asyncio.gather(
            *(self.call(w, "bootstrap", 300, addrs=seeds) for w in self.workers[1:])
        )
        return sum(int(r.get("ready", 0)) for r in [first_reply, *replies])

    async def call(
        self, worker: _Worker, op: str, timeout: float | None = None, **args: Any
    ) -> dict[str, Any]:
        """Send one command to ``worker`` and wait for its reply (an ``error`` on timeout)."""
        if not worker.alive or worker.proc.stdin is None:
            return {"error": "worker is dead"}
        cid = self._next_id
        self._next_id += 1
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        worker.pending[cid] = fut
        worker.proc.stdin.write((json.dumps({"id": cid, "op": op, **args}) + "\n").encode())
        try:
            await worker.proc.stdin.drain()
            return await asyncio.wait_for(fut, timeout or self.op_timeout)
        except TimeoutError:
            worker.pending.pop(cid, None)
            return {"error": f"timeout after {timeout or self.op_timeout} s"}
        except (ConnectionError, BrokenPipeError):
            return {"error": "worker is dead"}

    def worker_of(self, node: int) -> _Worker:
        """The worker hosting ``node``."""
        return self.workers[node % self.w]

    def alive_nodes(self) -> list[int]:
        """Nodes whose worker is alive."""
        return [i for w in self.workers if w.alive for i in w.nodes]

    async def run(self, op: Op) -> OpResult:
        """Run one operation; latency is the worker's own measure around the system call."""
        worker = self.worker_of(op.node)
        started = time.monotonic()
        if op.kind == "put":
            rep = await self.call(
                worker, "put", node=op.node, key=op.key.hex(), value=op.value.hex()
            )
            ok = bool(rep.get("ok")) and not rep.get("error")
        else:
            rep = await self.call(
                worker, "get", node=op.node, key=op.key.hex(), expect=[v.hex() for v in op.expect]
            )
            ok = rep.get("found") == len(op.expect) and not rep.get("error")
        ns = rep.get("ns")
        ms = ns / 1e6 if isinstance(ns, int) else (time.monotonic() - started) * 1e3
        return OpResult(
            op, ok, ms, rep.get("error"), started, int(rep.get("returned") or 0), rep.get("detail")
        )

    async def holders(self, key: bytes) -> set[int]:
        """Alive nodes that hold a value of ``key`` in their own storage."""
        alive = [w for w in self.workers if w.alive]
        replies = await asyncio.gather(
            *(self.call(w, "holds", key=key.hex(), nodes=w.nodes) for w in alive)
        )
        for w, r in zip(alive, replies, strict=True):
            if "error" in r and w.alive:
                raise RuntimeError(f"{self.system}: cannot inspect storage: {r['error']}")
        return {int(i) for r in replies for i in r.get("nodes", [])}

    async def refresh(self) -> None:
        """Every node refreshes every bucket once (Kademlia §2.3), all workers at once."""
        replies = await asyncio.gather(
            *(self.call(w, "refresh", 900) for w in self.workers if w.alive)
        )
        for r in replies:
            if "error" in r:
                raise RuntimeError(f"{self.system}: refresh failed: {r['error']}")

    async def counters(self) -> dict[str, int]:
        """Socket counters summed over alive workers, plus the namespace's loopback counters."""
        replies = await asyncio.gather(*(self.call(w, "counters") for w in self.workers if w.alive))
        total: dict[str, int] = {}
        for rep in replies:
            for name, value in rep.get("counters", {}).items():
                if name.startswith("lo_"):
                    total[name] = max(total.get(name, 0), int(value))  # one namespace, shared
                else:
                    total[name] = total.get(name, 0) + int(value)
        return total

    def kill_worker(self, worker: _Worker) -> list[int]:
        """SIGKILL one worker (its nodes die without a word); return its nodes."""
        if worker.alive:
            worker.proc.send_signal(signal.SIGKILL)
            worker.alive = False
        return list(worker.nodes)

    async def stop(self) -> None:
        """Stop every worker; kill the ones that do not stop within 20 s."""
        await asyncio.gather(
            *(self.call(w, "stop", 20) for w in self.workers if w.alive), return_exceptions=True
        )
        for w in self.workers:
            if w.proc.returncode is None:
                if w.proc.stdin is not None:
                    w.proc.stdin.close()
                try:
                    await asyncio.wait_for(w.proc.wait(), 10)
                except TimeoutError:
                    w.proc.kill()
                    await w.proc.wait()
            if w.reader is not None:
                await w.reader
        # Keep the workers' stderr logs only when something was written to them.
        logs = list(self.log_dir.iterdir())
        if all(p.stat().st_size == 0 for p in logs):
            for p in logs:
                p.unlink()
            self.log_dir.rmdir()


async def run_ops(
    cluster: Cluster,
    ops: Sequence[Op],
    *,
    concurrency: int = 1,
    label: str = "",
    progress: bool = True,
) -> list[OpResult]:
    """Run ``ops`` with at most ``concurrency`` in flight; results in op order."""
    sem = asyncio.Semaphore(concurrency)
    bar = Progress(label or f"{cluster.system} ops", len(ops), enabled=progress)

    async def one(op: Op) -> OpResult:
        async with sem:
            result = await cluster.run(op)
            bar.step()
            return result

    results = await asyncio.gather(*(one(op) for op in ops))
    bar.close()
    return list(results)


def phase_report(
    results: Sequence[OpResult], before: dict[str, int], after: dict[str, int], in_netns: bool
) -> dict[str, Any]:
    """Success rate, latency percentiles and traffic per operation of one phase."""
    n = len(results)
    lat = summarize([r.ms for r in results])
    ok = sum(1 for r in results if r.ok)
    errors: dict[str, int] = {}
    for r in results:
        if r.error:
            name = r.error.split(":", 1)[0]
            errors[name] = errors.get(name, 0) + 1
    report: dict[str, Any] = {
        "ops": n,
        "succeeded": ok,
        "success_rate": ok / n if n else None,
        "latency_ms": lat.to_json(),
        "over_1s": sum(1 for r in results if r.ms > 1000),
        "errors": errors,
        # Gets that failed without an error: nothing came back, or not every expected value.
        "failed_empty": sum(
            1 for r in results if r.op.kind == "get" and not r.ok and not r.error and not r.returned
        ),
        "failed_incomplete": sum(
            1 for r in results if r.op.kind == "get" and not r.ok and not r.error and r.returned
        ),
    }

    details = [r.detail for r in results if r.detail]
    if details and len(details) == n:
        # Latency net of first-sight signature checks (issue 16): what the lookup costs.
        net = summarize([r.ms - r.detail["verify_ns"] / 1e6 for r in results if r.detail])
        report["net_of_verify_ms"] = net.to_json()
        report["verified_per_op"] = sum(d["verified"] for d in details) / n
        report["verify_ms_per_op"] = sum(d["verify_ns"] for d in details) / n / 1e6
        report["queries_per_op"] = sum(d["queries"] for d in details) / n
        report["rounds"] = summarize([float(d["rounds"]) for d in details]).to_json()

    def per_op(name: str) -> float | None:
        if name not in after or name not in before or not n:
            return None
        return (after[name] - before[name]) / n

    if in_netns:
        report["datagrams_per_op"] = per_op("lo_tx_packets")
        report["bytes_per_op"] = per_op("lo_tx_bytes")
        report["traffic_counted_by"] = "network namespace loopback counters (IP bytes)"
    else:
        report["datagrams_per_op"] = None
        report["bytes_per_op"] = None
        report["traffic_counted_by"] = "n/a (no network namespace)"
    counted = sorted(name for name in after if name.startswith("m."))
    if counted:
        # The system's own counters per operation (fairdht: pings by purpose, token
        # presentations and refusals, where a put's time went).
        # A counter first bumped during the phase was 0 before it.
        report["counters_per_op"] = {
            name[2:]: (after[name] - before.get(name, 0)) / n if n else None for name in counted
        }
    if after.get("sock_sent"):
        report["socket_datagrams_per_op"] = per_op("sock_sent")
        report["socket_payload_bytes_per_op"] = per_op("sock_sent_bytes")
    return report


def worker_count(nodes: int) -> int:
    """A few processes: one per 50 nodes, at least 2, at most 4 (the machine has few cores)."""
    return max(2, min(4, nodes // 50))
