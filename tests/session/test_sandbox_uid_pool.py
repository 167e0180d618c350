"""Each running match holds its own uid, across every referee process on the host."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fairdht.game.uid_pool import UID_BASE, UID_SLOTS, UidLease


def test_leases_are_distinct_and_exclusive_until_released(tmp_path: Path) -> None:
    leases = [UidLease.acquire(tmp_path) for _ in range(50)]
    uids = {lease.uid for lease in leases}
    assert len(uids) == 50
    assert all(UID_BASE <= uid < UID_BASE + UID_SLOTS for uid in uids)
    held = leases[0]
    fd = os.open(tmp_path / f"{held.uid}.lock", os.O_RDWR)
    try:
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.release()
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free once released
    finally:
        os.close(fd)
        for lease in leases:
            lease.release()


HOLDER = """
import fcntl, os, sys
fds = [os.open(f"{sys.argv[1]}/{uid}.lock", os.O_RDWR | os.O_CREAT) for uid in sys.argv[2:]]
for fd in fds:
    fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.read()
"""


def test_a_uid_held_by_another_referee_process_is_not_handed_out(tmp_path: Path) -> None:
    # Another process holds three of four slots: every lease here must be the fourth.
    held = [str(UID_BASE + slot) for slot in (0, 1, 3)]
    with subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path), *held],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdin is not None and holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        for _ in range(5):
            lease = UidLease.acquire(tmp_path, slots=4)
            assert lease.uid == UID_BASE + 2
            lease.release()
        taken = UidLease.acquire(tmp_path, slots=4)
        with pytest.raises(OSError, match="no free sandbox uid"):
            UidLease.acquire(tmp_path, slots=4)
        taken.release()
        holder.stdin.close()
