"""A child process for the crash and full-disk campaigns: writes records as fast as it can.

``python crash_writer.py DB --seed N [--sync full|normal] [--fsize-limit BYTES]``

Prints ``ACK <key> <author> <subkey> <seq>`` (hex, flushed) after each ``put`` has
returned, so every printed line is an acknowledged record. With ``--fsize-limit`` it
sets RLIMIT_FSIZE (and ignores SIGXFSZ, so the write fails with EFBIG instead of the
signal killing the process), writes until the store refuses with ``QuotaExceeded``,
prints ``FULL <message>``, checks that every acknowledged record still reads back,
prints ``READS_OK <n>`` and exits 0. Bounded: stops after ``--max-puts`` or 60 s.
"""

from __future__ import annotations

import argparse
import random
import resource
import signal
import sys
import time

from fairdht.dht.storage import SQLiteRecordStore
from fairdht.errors import QuotaExceeded, StaleRecord
from fairdht.identity import SigningKey
from fairdht.records import Record, sign_record, sign_withdrawal
from fairdht.records.kinds.server import SERVER_KIND, ServerAnnouncement

AUTHORS = 8
SLOTS_PER_AUTHOR = 24  # 8 x 24 = 192 slots: under the default per-author quota of 256


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("db")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--sync", choices=["full", "normal"], default="full")
    parser.add_argument("--fsize-limit", type=int, default=0)
    parser.add_argument("--max-puts", type=int, default=100_000)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    keys = [SigningKey(bytes([i + 1]) * 32) for i in range(AUTHORS)]
    if args.fsize_limit:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (args.fsize_limit, args.fsize_limit))
    store = SQLiteRecordStore(args.db, synchronous=args.sync)
    acked: dict[tuple[bytes, bytes, bytes], Record] = {}
    last_seq = 0
    deadline = time.monotonic() + 60
    out = sys.stdout
    for n in range(args.max_puts):
        if time.monotonic() > deadline:
            break
        now = time.time()
        # Strictly newer than anything this or an earlier (killed) run wrote.
        last_seq = max(last_seq + 1, time.time_ns() // 1000)
        key = keys[rng.randrange(AUTHORS)]
        subkey = b"c" + rng.randrange(SLOTS_PER_AUTHOR).to_bytes(2, "big")
        if rng.random() < 0.1:
            r = sign_withdrawal(key, SERVER_KIND, "crash", subkey, now=now, seq=last_seq)
        else:
            body = ServerAnnouncement(
                address=f"127.0.{n % 250}.1:{1000 + n % 50000}",
                name=f"server {n} " + "x" * rng.randrange(40),
                players=rng.randrange(16),
                max_players=16,
            )
            r = sign_record(key, SERVER_KIND, "crash", subkey, body, now=now, seq=last_seq)
        try:
            store.put(r.key, r, now=now)
        except StaleRecord:
            continue
        except QuotaExceeded as exc:
            if not args.fsize_limit:
                raise
            out.write(f"FULL {exc}\n")
            out.flush()
            for ack in acked.values():
                assert ack in store.get(ack.key, now=time.time()), "acknowledged record lost"
            out.write(f"READS_OK {len(acked)}\n")
            out.flush()
            store.close()
            return 0
        out.write(f"ACK {r.key.hex()} {r.author.hex()} {r.subkey.hex()} {r.seq}\n")
        out.flush()
        if args.fsize_limit:
            acked[(r.key, r.author, r.subkey)] = r
        if n % 200 == 199:
            store.expire(now)
    store.close()
    return 3 if args.fsize_limit else 0


if __name__ == "__main__":
    sys.exit(main())
