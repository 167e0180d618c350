"""A node whose disk fills up (RLIMIT_FSIZE in a child process) says so and loses nothing.

The file-size limit makes the kernel refuse writes past it with EFBIG, as a full
disk refuses them with ENOSPC; SQLite reports an I/O error or SQLITE_FULL and the
store turns either into ``QuotaExceeded("disk full ...")``.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from fairdht.dht.storage import RECORDS_FILENAME, SQLiteRecordStore

WRITER = Path(__file__).with_name("crash_writer.py")


def test_a_file_size_limit_refuses_puts_keeps_reads_and_every_ack(tmp_path: Path) -> None:
    path = tmp_path / RECORDS_FILENAME
    SQLiteRecordStore(path).close()
    limit = 1024 * 1024
    done = subprocess.run(
        [sys.executable, str(WRITER), str(path), "--seed", "7", "--fsize-limit", str(limit)],
        capture_output=True,
        timeout=120,
        check=False,
    )
    out = done.stdout.decode().splitlines()
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    acks = [line.split() for line in out if line.startswith("ACK ")]
    full = [line for line in out if line.startswith("FULL ")]
    assert len(acks) > 20
    assert len(full) == 1
    assert "disk full" in full[0]
    assert str(path) in full[0]
    # The child read every acknowledged record back after the refusal.
    assert out[-1] == f"READS_OK {len({(a[1], a[2], a[3]) for a in acks})}"

    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    db.close()
    newest: dict[tuple[bytes, bytes, bytes], int] = {}
    for _, key, author, subkey, seq in acks:
        slot = (bytes.fromhex(key), bytes.fromhex(author), bytes.fromhex(subkey))
        newest[slot] = max(newest.get(slot, 0), int(seq))
    with SQLiteRecordStore(path) as store:
        held = {(k, r.author, r.subkey): r.seq for k, r in store.items(now=time.time())}
        assert held == newest
