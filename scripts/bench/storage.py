"""Record store throughput: puts and gets of the in-memory and SQLite stores.

SQLite runs with ``synchronous=full`` (every commit fsynced: survives power loss) and
``normal`` (survives a crash of the process only). Each put is its own committed
transaction, as a node does it. "get, cold" reopens the file, so every record is
decoded and its signature verified once; "get, warm" reads again through the
decode cache.

    .venv/bin/python scripts/bench/storage.py [--quick] [--dir DIR]
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchlib import Progress, bench_parser, print_table, write_results

from fairdht.dht.storage import (
    RECORDS_FILENAME,
    MemoryRecordStore,
    Quotas,
    RecordStore,
    SQLiteRecordStore,
)
from fairdht.identity import SigningKey
from fairdht.records import Record, sign_record
from fairdht.records.kinds.server import SERVER_KIND, ServerAnnouncement

NETWORK = "bench"
AUTHORS = 64


def make_records(count: int, now: float, seq: int, tag: str) -> list[Record]:
    """``count`` server announcements (~250 bytes) from AUTHORS keys, one slot each."""
    keys = [SigningKey(i.to_bytes(4, "big") * 8) for i in range(1, AUTHORS + 1)]
    return [
        sign_record(
            keys[i % AUTHORS],
            SERVER_KIND,
            NETWORK,
            b"slot" + (i // AUTHORS).to_bytes(2, "big"),
            ServerAnnouncement(
                address=f"10.{i // 250 % 250}.{i % 250}.1:{28000 + i % 1000}",
                name=f"Inexor public server {i} {tag}",
                mode="ctf",
                map="forge",
                players=i % 17,
                max_players=32,
                game_version="0.9.1",
                tags=("eu", "ranked"),
            ),
            now=now,
            seq=seq,
        )
        for i in range(count)
    ]


def rate(n: int, fn: Callable[[], None]) -> float:
    """Operations per second of ``fn`` doing ``n`` operations."""
    start = time.perf_counter()
    fn()
    return n / (time.perf_counter() - start)


def measure(
    name: str,
    open_store: Callable[[], RecordStore],
    fresh: Sequence[Record],
    newer: Sequence[Record],
    now: float,
    get_rounds: int,
    reopens: bool,
    show_progress: bool,
) -> dict[str, Any]:
    """Put ``fresh`` (new slots), put ``newer`` (replacements), then read every key."""
    store = open_store()
    progress = Progress(name, 4, enabled=show_progress)

    def put_all(records: Sequence[Record]) -> Callable[[], None]:
        def run() -> None:
            for r in records:
                store.put(r.key, r, now=now)

        return run

    put_new = rate(len(fresh), put_all(fresh))
    progress.step()
    put_replace = rate(len(newer), put_all(newer))
    progress.step()
    keys = store.keys()
    cold = float("nan")
    if reopens:
        store.close()
        store = open_store()

        def read_once() -> None:
            for key in keys:
                store.get(key, now=now)

        cold = rate(len(newer), read_once)
    progress.step()

    def read_warm() -> None:
        for _ in range(get_rounds):
            for key in keys:
                store.get(key, now=now)

    warm_gets = rate(get_rounds * len(keys), read_warm)
    progress.step()
    progress.close()
    assert store.count() == len(newer)
    store.close()
    return {
        "put_new_per_s": put_new,
        "put_replace_per_s": put_replace,
        "get_cold_records_per_s": cold,
        "get_warm_keys_per_s": warm_gets,
        "get_warm_records_per_s": warm_gets * len(newer) / len(keys),
        "keys": len(keys),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run every store and print one table."""
    parser = bench_parser(__doc__ or "storage benchmark")
    parser.add_argument("--records", type=int, default=4000, help="records per store")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions (median is shown)")
    parser.add_argument(
        "--dir", type=Path, default=None, help="where the SQLite files go (default: a temp dir)"
    )
    args = parser.parse_args(argv)
    count = 800 if args.quick else args.records
    get_rounds = 5 if args.quick else 20
    now = time.time()
    fresh = make_records(count, now, seq=1, tag="a")
    newer = make_records(count, now, seq=2, tag="b")
    quotas = Quotas(max_per_author=count, max_per_key=count)
    base = Path(tempfile.mkdtemp(prefix="fairdht-bench-", dir=args.dir))
    show = not args.no_progress
    runs: dict[str, list[dict[str, Any]]] = {}
    try:
        for rep in range(args.repeat):
            runs.setdefault("memory", []).append(
                measure(
                    "memory",
                    lambda: MemoryRecordStore(quotas),
                    fresh,
                    newer,
                    now,
                    get_rounds,
                    False,
                    show,
                )
            )
            for sync in ("full", "normal"):
                path = base / f"{sync}-{rep}" / RECORDS_FILENAME

                def open_sqlite(path: Path = path, sync: str = sync) -> RecordStore:
                    return SQLiteRecordStore(
                        path, quotas=quotas, synchronous="full" if sync == "full" else "normal"
                    )

                runs.setdefault(f"sqlite-{sync}", []).append(
                    measure(
                        f"sqlite synchronous={sync}",
                        open_sqlite,
                        fresh,
                        newer,
                        now,
                        get_rounds,
                        True,
                        show,
                    )
                )
    finally:
        shutil.rmtree(base, ignore_errors=True)
    # The median of the repetitions, field by field: one slow fsync does not decide.
    results = {
        name: {field: statistics.median(run[field] for run in reps) for field in reps[0]}
        for name, reps in runs.items()
    }
    print_table(
        f"Record store throughput ({count} records of ~{len(fresh[0].raw)} bytes, "
        f"{results['memory']['keys']} keys; median of {args.repeat}; files in {base.parent})",
        [
            "store",
            "put new /s",
            "put replace /s",
            "get cold records/s",
            "get warm keys/s",
            "get warm records/s",
        ],
        [
            [
                name,
                r["put_new_per_s"],
                r["put_replace_per_s"],
                r["get_cold_records_per_s"],
                r["get_warm_keys_per_s"],
                r["get_warm_records_per_s"],
            ]
            for name, r in results.items()
        ],
    )
    write_results(
        args.out,
        "storage",
        {
            "records": count,
            "get_rounds": get_rounds,
            "repeat": args.repeat,
            "dir": str(base.parent),
        },
        results,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
