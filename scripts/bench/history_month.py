"""History size after a simulated month: servers re-announcing every 5 minutes, churn,
a checkpoint a day, compaction of local commits older than the retention.

Listings are fed to ``History`` directly (no network): each 5-minute tick every server
re-announces with a new player count (which the history does not track, so it makes
no commit), ``--replace`` servers leave and as many new ones appear, and ``--rename``
servers change their name or game version. Once a day a checkpoint over the current
list enters the spine and local commits older than ``--retention-days`` are folded
into the checkpoint they lead to. Announcement records are signed once per slot and
reused: seq and time are not tracked either, so re-signing would change nothing here.

    .venv/bin/python scripts/bench/history_month.py [--quick] [--servers N] [--days D]
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchlib import Progress, bench_parser, print_table, write_results

from fairdht.content.blobs import split_blob
from fairdht.identity import SigningKey
from fairdht.records import Record
from fairdht.records.kinds.checkpoint import CheckpointBody
from fairdht.serverlist import (
    Entry,
    History,
    Listing,
    announcement_record,
    leaf_id,
    make_announcement,
    member_list_of,
)
from fairdht.serverlist.policy import Control
from fairdht.serverlist.spine import NO_PARENT, spine_id

NETWORK = "bench"
TICK = 300  # seconds between re-announcements
START = 1_800_000_000


def size_bound(
    servers: int, days: int, retention_days: int, replace_n: int, rename_n: int
) -> dict[str, int]:
    """The documented ceiling (docs/BENCHMARKS.md): what a month may hold after compaction.

    Local commits: at most one per tick inside the retention plus the day being built.
    Entries: the first list, 2 per replaced server and 1 per rename for every tick kept
    in full, and at most that much again as the net diff of each folded day.
    """
    ticks_per_day = 86400 // TICK
    kept_days = min(days, retention_days + 1)
    per_tick = 2 * replace_n + rename_n
    return {
        "local_commits": kept_days * ticks_per_day + 1,
        "spine_commits": days,
        "entries": servers + per_tick * ticks_per_day * (kept_days + days) + 2 * servers,
    }


class World:
    """The servers of the simulation and the signed record of each slot."""

    def __init__(self, servers: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.next_id = 0
        self.live: dict[int, Entry] = {}
        for _ in range(servers):
            self._spawn(START)

    def _entry(self, i: int, now: float, name: str, version: str) -> Entry:
        signer = SigningKey(i.to_bytes(8, "big") * 4)
        address = f"10.{i // 62500 % 250}.{i // 250 % 250}.{i % 250 + 1}:28785"
        body = make_announcement(
            address=address, name=name, players=0, max_players=32, game_version=version
        )
        record: Record = announcement_record(signer, NETWORK, body, now=now)
        leaf = leaf_id(NETWORK, record.author, record.subkey, address)
        return Entry(record, body, leaf, False)

    def _spawn(self, now: float) -> None:
        i = self.next_id
        self.next_id += 1
        self.live[i] = self._entry(i, now, f"server {i}", "1.0")

    def tick(self, now: float, replace_n: int, rename_n: int) -> Listing:
        """One 5-minute step: churn, then every server re-announces new player counts."""
        for _ in range(replace_n):
            del self.live[self.rng.choice(list(self.live))]
            self._spawn(now)
        for i in self.rng.sample(list(self.live), rename_n):
            old = self.live[i].body
            version = "1.1" if old.game_version == "1.0" else "1.0"
            name = old.name if self.rng.random() < 0.5 else f"server {i} ({int(now)})"
            self.live[i] = self._entry(i, now, name, version)
        entries = tuple(
            replace(e, body=replace(e.body, players=self.rng.randrange(33)))
            for e in self.live.values()
        )
        return Listing(NETWORK, entries)


def _checkpoint(
    history: History, listing: Listing, version: int, parent: bytes, now: float
) -> bytes:
    members = member_list_of(listing, version)
    data = members.encode()
    blob_id, _ = split_blob(data)
    history.put_member_list(blob_id, data)
    body = CheckpointBody(
        version, members.root, blob_id, len(members.members), int(now) + 7 * 86400, parent
    )
    control = Control(
        "checkpoint", NETWORK, version, body.root, blob_id, body.count, body.expires,
        frozenset(), (), parent=parent, body=body,
    )  # fmt: skip
    history.commit_spine(control, members, now=now, listing=listing, note=f"day {version}")
    return spine_id(control)


def simulate(
    path: Path,
    *,
    servers: int,
    days: int,
    retention_days: int,
    replace_n: int,
    rename_n: int,
    seed: int,
    compact: bool = True,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run the month into a fresh history file at ``path``; return sizes and timings."""
    history = History(path)
    world = World(servers, seed)
    parent = NO_PARENT
    ticks_per_day = 86400 // TICK
    commit_s = compact_s = 0.0
    commits = 0
    for day in range(days):
        for t in range(ticks_per_day):
            now = START + (day * ticks_per_day + t) * TICK
            listing = world.tick(now, replace_n, rename_n)
            started = time.perf_counter()
            if history.commit(listing, now=now) is not None:
                commits += 1
            commit_s += time.perf_counter() - started
        now = START + (day + 1) * 86400 - 1
        parent = _checkpoint(history, listing, day + 1, parent, now)
        if compact:
            started = time.perf_counter()
            history.compact(NETWORK, now=now, retention=retention_days * 86400)
            compact_s += time.perf_counter() - started
        if progress is not None:
            progress.step()
    history.vacuum()  # the file's real size, once SQLite has given freed pages back
    size = history.size(NETWORK)
    return {
        **size,
        "commits_written": commits,
        "file_bytes": path.stat().st_size,
        "commit_ms_mean": 1000 * commit_s / max(1, days * ticks_per_day),
        "compact_s_total": compact_s,
        "chain_ok": history.verify_chain(NETWORK),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulated month with and without compaction and write the results."""
    parser = bench_parser(__doc__ or "history size benchmark")
    parser.add_argument("--servers", type=int, default=4096)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--retention-days", type=int, default=7)
    parser.add_argument("--replace", type=int, default=1, help="servers replaced per tick")
    parser.add_argument("--rename", type=int, default=1, help="servers renamed per tick")
    parser.add_argument(
        "--baseline", action="store_true", help="also run without compaction (doubles the time)"
    )
    args = parser.parse_args(argv)
    servers, days, retention = (
        (96, 3, 1) if args.quick else (args.servers, args.days, args.retention_days)
    )
    settings = {
        "quick": args.quick,
        "servers": servers,
        "days": days,
        "retention_days": retention,
        "replace_per_tick": args.replace,
        "rename_per_tick": args.rename,
        "tick_s": TICK,
        "seed": args.seed,
    }
    progress = None if args.no_progress else Progress("history_month", days)
    results: dict[str, Any] = {
        "bound": size_bound(servers, days, retention, args.replace, args.rename)
    }
    with tempfile.TemporaryDirectory() as tmp:
        runs = [("compacted", True)]
        if args.quick or args.baseline:
            runs.append(("uncompacted", False))
        for label, compact in runs:
            results[label] = simulate(
                Path(tmp) / f"{label}.sqlite", servers=servers, days=days,
                retention_days=retention, replace_n=args.replace, rename_n=args.rename,
                seed=args.seed, compact=compact, progress=progress,
            )  # fmt: skip
    if progress is not None:
        progress.close()
    c = results["compacted"]
    results["within_bound"] = all(c[k] <= v for k, v in results["bound"].items())
    print_table(
        f"history after {days} days, {servers} servers",
        ["", "local commits", "spine commits", "entries", "file KiB", "commit ms"],
        [
            [label, r["local_commits"], r["spine_commits"], r["entries"], r["file_bytes"] // 1024,
             round(r["commit_ms_mean"], 2)]
            for label, r in results.items()
            if label in ("compacted", "uncompacted")
        ],
    )  # fmt: skip
    write_results(args.out, "history_month", settings, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
