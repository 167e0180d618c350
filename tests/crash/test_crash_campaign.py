"""kill -9 at random moments of a write-heavy run: no acknowledged record lost (issue 9).

A child process (crash_writer.py) puts records into one SQLite store as fast as it
can and prints each record's id once ``put`` has returned. The parent SIGKILLs it at
a random moment, checks ``PRAGMA integrity_check`` and that every acknowledged record
(or a newer one of its slot) is there, then starts the next writer on the same file.
"""

from __future__ import annotations

import os
import random
import select
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fairdht.dht.storage import RECORDS_FILENAME, SQLiteRecordStore

WRITER = Path(__file__).with_name("crash_writer.py")

Slot = tuple[bytes, bytes, bytes]
NL = b"\n"


def read_lines_until(
    proc: subprocess.Popen[bytes], buf: bytearray, want: int, timeout: float
) -> None:
    """Read the child's stdout into ``buf`` until it holds ``want`` lines (or timeout)."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    while buf.count(NL) < want:
        left = deadline - time.monotonic()
        assert left > 0, f"writer printed {buf.count(NL)} of {want} lines in {timeout} s"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 65536)
            assert chunk, f"writer exited early: {proc.wait()}"
            buf += chunk


def parse_acks(buf: bytes, acked: dict[Slot, int]) -> int:
    """Fold the complete ACK lines of ``buf`` into ``acked`` (slot -> newest seq)."""
    lines = buf.split(b"\n")[:-1]  # a torn last line was not fully printed
    for line in lines:
        tag, key, author, subkey, seq = line.decode().split()
        assert tag == "ACK"
        slot = (bytes.fromhex(key), bytes.fromhex(author), bytes.fromhex(subkey))
        acked[slot] = max(acked.get(slot, 0), int(seq))
    return len(lines)


def check_store(path: Path, acked: dict[Slot, int]) -> None:
    """The file is sound and holds every acknowledged record or a newer one of its slot."""
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    db.close()
    with SQLiteRecordStore(path) as store:
        now = time.time()
        held = {(key, r.author, r.subkey): r.seq for key, r in store.items(now=now)}
        lost = {slot: seq for slot, seq in acked.items() if held.get(slot, -1) < seq}
        assert not lost, f"{len(lost)} acknowledged records lost"
        assert store.counters()["corrupt_dropped"] == 0
        assert store.integrity_check() == []


def campaign(tmp_path: Path, kills: int, seed: int, syncs: tuple[str, ...]) -> int:
    rng = random.Random(seed)
    path = tmp_path / RECORDS_FILENAME
    acked: dict[Slot, int] = {}
    total = 0
    for round_ in range(kills):
        sync = syncs[round_ % len(syncs)]
        writer_seed = str(seed * 1000 + round_)
        argv = [sys.executable, str(WRITER), str(path), "--seed", writer_seed, "--sync", sync]
        with (tmp_path / "writer.stderr").open("ab") as err:
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err)
        buf = bytearray()
        try:
            if rng.random() < 0.2:
                # Now and then while it starts: opening, WAL recovery, the first puts.
                time.sleep(rng.uniform(0, 0.5))
            else:
                # Otherwise mid-run: after 1-150 acknowledged puts, then 0-20 ms more.
                read_lines_until(proc, buf, rng.randint(1, 150), timeout=60)
                time.sleep(rng.uniform(0, 0.02))
            proc.send_signal(signal.SIGKILL)
        finally:
            if proc.poll() is None:
                proc.kill()
            assert proc.stdout is not None
            buf += proc.stdout.read()
            proc.stdout.close()
            proc.wait()
        stderr = (tmp_path / "writer.stderr").read_text(errors="replace")
        assert "Traceback" not in stderr, stderr[-2000:]
        assert proc.returncode == -signal.SIGKILL
        total += parse_acks(bytes(buf), acked)
        check_store(path, acked)
    return total


def test_three_kills_lose_no_acknowledged_record(tmp_path: Path) -> None:
    total = campaign(tmp_path, kills=3, seed=1, syncs=("full",))
    assert total >= 1


@pytest.mark.slow
def test_twenty_kills_lose_no_acknowledged_record(tmp_path: Path) -> None:
    total = campaign(tmp_path, kills=20, seed=2, syncs=("full", "normal"))
    assert total >= 20
