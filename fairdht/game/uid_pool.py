"""One host uid per running match, for referees that run as root (docs/game-rules.md).

With one shared "nobody", any match's rules could signal or ptrace another's and all
of them shared one RLIMIT_NPROC count. Each match now leases a uid (and the gid of the
same number) from ``UID_BASE`` .. ``UID_BASE + UID_SLOTS - 1``: 2,000,000,000 and up
lies in the range systemd documents as unused (above its container range, below
2^31), so it collides with no account or subordinate-uid range of a usual host.
A lease is an exclusive ``flock`` on ``LEASE_DIR/<uid>.lock``: it holds across every
referee process on the host and is released by the kernel if the referee dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
from pathlib import Path

__all__ = ["LEASE_DIR", "UID_BASE", "UID_SLOTS", "UidLease"]

UID_BASE = 2_000_000_000
UID_SLOTS = 65_536
LEASE_DIR = Path("/run/fairdht-sandbox")
_TRIES = 64


class UidLease:
    """A uid no other running match holds; ``release()`` when the match ends."""

    def __init__(self, uid: int, fd: int) -> None:
        self.uid = uid
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, lease_dir: Path = LEASE_DIR, *, slots: int = UID_SLOTS) -> UidLease:
        """Lease a free uid among the first ``slots``; OSError when none is free or usable."""
        lease_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        for _ in range(_TRIES):
            uid = UID_BASE + secrets.randbelow(slots)
            fd = os.open(lease_dir / f"{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return cls(uid, fd)
        raise OSError(f"no free sandbox uid after {_TRIES} tries in {lease_dir}")

    def release(self) -> None:
        """Give the uid back (its processes must be gone)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
