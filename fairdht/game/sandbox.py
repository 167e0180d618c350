"""Run untrusted game rules in a resource-limited child process (docs/game-rules.md).

The child gets an empty environment, a private copy of the bundle, its own network
namespace (no network at all), rlimits on memory, CPU time, open files and file size,
and - when the referee runs as root - an unprivileged user, so key files stay out of
reach. Every call has a wall-clock timeout and a CPU budget measured from
/proc/PID/schedstat; a rules process that crashes, hangs, overruns or talks garbage
ends the match with a ``RulesFailure`` naming why, never the referee's node.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import resource
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

from fairdht.errors import FairDHTError, ProtocolError
from fairdht.game.frames import decode_payload, encode_frame, read_frame

__all__ = ["Limits", "RulesFailure", "RulesProcess"]

log = logging.getLogger(__name__)

_CLONE_NEWNET = 0x40000000
_CLONE_NEWUSER = 0x10000000


class RulesFailure(FairDHTError):
    """The rules process failed; ``reason`` is crashed, timeout, cpu_limit or protocol."""

    code = "rules_failure"

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"game rules {reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Limits:
    """Resource limits of one rules process (issue 6 defaults)."""

    memory_bytes: int = 256 * 2**20
    cpu_per_input_s: float = 0.05
    cpu_per_match_s: int = 60
    call_timeout_s: float = 2.0
    start_timeout_s: float = 10.0


def _isolate(limits: Limits) -> None:  # runs in the child between fork and exec
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_per_match_s, limits.cpu_per_match_s + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (32, 32))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    libc = ctypes.CDLL(None, use_errno=True)
    flags = _CLONE_NEWNET if os.getuid() == 0 else _CLONE_NEWUSER | _CLONE_NEWNET
    # Without privileges and without user namespaces this fails; the child then keeps
    # the host network, which the referee reports once in its log (see launch()).
    libc.unshare(flags)


def _cpu_ns(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/schedstat", encoding="ascii") as handle:
            return int(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _copy_bundle(src: Path) -> Path:
    root = Path(tempfile.mkdtemp(prefix="fairdht-rules-"))
    dst = root / "bundle"
    shutil.copytree(src, dst, symlinks=False)
    # The unprivileged user may read (not write) the private copy, nothing else of ours.
    os.chmod(root, 0o755)
    for dirpath, _dirnames, filenames in os.walk(dst):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o644)
    return dst


class RulesProcess:
    """One running rules process; use ``await RulesProcess.launch(bundle_dir)``."""

    def __init__(self, proc: asyncio.subprocess.Process, workdir: Path, limits: Limits) -> None:
        self._proc = proc
        self._workdir = workdir
        self.limits = limits
        self.failure: RulesFailure | None = None

    @classmethod
    async def launch(
        cls, bundle_dir: Path, *, entry: str = "rules.py", limits: Limits | None = None
    ) -> RulesProcess:
        """Copy the bundle, start its rules under the sandbox, return the process."""
        limits = limits or Limits()
        if not (Path(bundle_dir) / entry).is_file():
            raise RulesFailure("crashed", f"bundle has no {entry}")
        workdir = _copy_bundle(Path(bundle_dir))
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            "-m",
            "fairdht.game.launcher",
            str(workdir),
            entry,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env={},
            cwd=str(workdir),
            preexec_fn=lambda: _isolate(limits),
            start_new_session=True,
        )
        return cls(proc, workdir, limits)

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self._proc.pid

    async def _call(self, request: dict[str, Any], *, limit_s: float) -> dict[str, Any]:
        if self.failure is not None:
            raise self.failure
        assert self._proc.stdin is not None and self._proc.stdout is not None
        before = _cpu_ns(self._proc.pid)
        try:
            self._proc.stdin.write(encode_frame(msgpack.packb(request, use_bin_type=True)))
            await self._proc.stdin.drain()
            reply = decode_payload(await asyncio.wait_for(read_frame(self._proc.stdout), limit_s))
        except TimeoutError:
            raise await self._fail(
                "timeout", f"no answer to {request['op']} within {limit_s} s"
            ) from None
        except (asyncio.IncompleteReadError, ConnectionError, BrokenPipeError):
            code = await self._exit_code()
            raise await self._fail("crashed", f"process exited ({code})") from None
        except ProtocolError as exc:
            raise await self._fail("protocol", str(exc)) from None
        after = _cpu_ns(self._proc.pid)
        if (
            request["op"] == "input"
            and before is not None
            and after is not None
            and (after - before) / 1e9 > self.limits.cpu_per_input_s
        ):
            used = (after - before) / 1e6
            raise await self._fail("cpu_limit", f"an input took {used:.0f} ms of CPU")
        if "error" in reply:
            raise await self._fail("protocol", f"rules answered error: {str(reply['error'])[:200]}")
        return reply

    async def _exit_code(self) -> int | None:
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(self._proc.wait(), 1.0)
        return None

    async def _fail(self, reason: str, detail: str) -> RulesFailure:
        self.failure = RulesFailure(reason, detail)
        log.warning("rules process %d: %s", self._proc.pid, self.failure)
        await self.close()
        return self.failure

    async def start(self, match: dict[str, Any], players: list[str], now: int) -> None:
        """Start the match."""
        await self._call(
            {"op": "start", "match": match, "players": players, "now": now},
            limit_s=self.limits.start_timeout_s,
        )

    async def input(self, player: str, payload: Any, now: int) -> str | None:
        """Apply an input; None if accepted, else the rules' reason for refusing it."""
        reply = await self._call(
            {"op": "input", "player": player, "payload": payload, "now": now},
            limit_s=self.limits.call_timeout_s,
        )
        if reply.get("ok") is True:
            return None
        return str(reply.get("reason") or "rejected")[:200]

    async def tick(self, now: int) -> tuple[Any, bool]:
        """Advance the game; (state, done)."""
        reply = await self._call({"op": "tick", "now": now}, limit_s=self.limits.call_timeout_s)
        return reply.get("state"), bool(reply.get("done"))

    async def end(self, now: int) -> dict[str, Any]:
        """The final result map."""
        reply = await self._call({"op": "end", "now": now}, limit_s=self.limits.call_timeout_s)
        result = reply.get("result")
        if not isinstance(result, dict):
            raise await self._fail("protocol", "end did not return a map")
        return result

    async def close(self) -> None:
        """Kill the process (its whole session) and remove the bundle copy."""
        if self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, 9)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._proc.wait(), 5.0)
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        shutil.rmtree(self._workdir.parent, ignore_errors=True)
