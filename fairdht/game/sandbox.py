"""Run untrusted game rules in a sandboxed child process (docs/game-rules.md, "Sandbox").

The referee starts the trusted launcher (``fairdht.game.launcher``), which gives the
match its own PID, mount, network and IPC namespaces (and user namespace when the
referee is not root), its own root file system with private /tmp and /dev/shm, rlimits,
its own uid (root) or no capabilities (user namespace), no-new-privileges and a seccomp
filter, before any bundle code runs. When that cannot be built the match is refused
with one sentence saying what the host lacks; rules never run unsandboxed.

Every call has a wall-clock timeout and a CPU budget measured over all threads of the
rules process (/proc/PID/task/*/schedstat and /proc/PID/stat); a rules process that crashes, hangs,
overruns or talks garbage ends the match with a ``RulesFailure`` naming why, never
the referee's node. ``close()`` returns only when every process of the match is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

from fairdht.errors import FairDHTError, ProtocolError
from fairdht.game.frames import decode_payload, encode_frame, read_frame
from fairdht.game.uid_pool import UidLease

__all__ = ["Limits", "RulesFailure", "RulesProcess", "probe_sandbox"]

log = logging.getLogger(__name__)


class RulesFailure(FairDHTError):
    """The rules process failed; ``reason`` is sandbox, crashed, timeout, cpu_limit or protocol."""

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


_TICK_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def _cpu_sample(pid: int) -> tuple[int, int] | None:
    """CPU time of process ``pid`` in ns, as (live threads, all threads ever).

    The first sums /proc/PID/task/*/schedstat (exact, but a thread that has ended is
    gone from it); the second is utime + stime from /proc/PID/stat, which keeps ended
    threads but counts in clock ticks. A call's cost is the larger of the two deltas,
    so a thread that burns and exits within one input is still charged.
    """
    live = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        ever = (int(fields[11]) + int(fields[12])) * _TICK_NS
    except (OSError, ValueError, IndexError):
        return None
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat", encoding="ascii") as handle:
                live += int(handle.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # the thread ended between listing and reading
    return live, ever


def _copy_bundle(src: Path) -> Path:
    root = Path(tempfile.mkdtemp(prefix="fairdht-rules-"))
    dst = root / "bundle"
    # Links are copied as links and then refused: following one as root would copy (or
    # chmod) whatever host file it names. Code hashes refuse them too (referee/codehash.py).
    shutil.copytree(src, dst, symlinks=True)
    os.chmod(root, 0o755)
    for dirpath, dirnames, filenames in os.walk(dst):
        for name in dirnames + filenames:
            if os.path.islink(os.path.join(dirpath, name)):
                shutil.rmtree(root, ignore_errors=True)
                raise RulesFailure("crashed", f"bundle holds a symlink: {name}")
        # The match's uid may read (not write) the private copy, nothing else of ours.
        os.chmod(dirpath, 0o755)
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o644)
    # Mount point of the match's own root file system (fairdht.game.namespaces.build_root).
    (root / "root").mkdir()
    return dst


class RulesProcess:
    """One running rules process; use ``await RulesProcess.launch(bundle_dir)``."""

    def __init__(
        self,
        proc: asyncio.subprocess.Process | None,
        workdir: Path,
        limits: Limits,
        *,
        rules_pid: int = 0,
        lease: UidLease | None = None,
        failure: RulesFailure | None = None,
    ) -> None:
        self._proc = proc
        self._workdir = workdir
        self._rules_pid = rules_pid
        self._lease = lease
        self.limits = limits
        self.failure = failure

    @classmethod
    async def launch(
        cls, bundle_dir: Path, *, entry: str = "rules.py", limits: Limits | None = None
    ) -> RulesProcess:
        """Copy the bundle, start its rules under the sandbox, return the process.

        When the host cannot build the sandbox the returned process has already failed
        with reason ``sandbox``: its first call raises the ``RulesFailure`` saying what
        is missing, so the match ends as ``rules_failed`` instead of running unconfined.
        """
        limits = limits or Limits()
        if not (Path(bundle_dir) / entry).is_file():
            raise RulesFailure("crashed", f"bundle has no {entry}")
        workdir = _copy_bundle(Path(bundle_dir))
        lease: UidLease | None = None
        if os.geteuid() == 0:
            try:
                lease = UidLease.acquire()
            except OSError as exc:
                shutil.rmtree(workdir.parent, ignore_errors=True)
                failure = RulesFailure("sandbox", f"no uid for the match: {exc}")
                return cls(None, workdir, limits, failure=failure)
        config = {
            "workdir": str(workdir.parent),
            "entry": entry,
            "uid": None if lease is None else lease.uid,
            "parent": os.getpid(),
            "memory_bytes": limits.memory_bytes,
            "cpu_per_match_s": limits.cpu_per_match_s,
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            "-m",
            "fairdht.game.launcher",
            json.dumps(config),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env={},
            cwd="/",
            start_new_session=True,
        )
        rules = cls(proc, workdir, limits, lease=lease)
        assert proc.stdout is not None
        try:
            hello = decode_payload(
                await asyncio.wait_for(read_frame(proc.stdout), limits.start_timeout_s)
            )
        except TimeoutError:
            hello = {"error": f"the launcher did not report within {limits.start_timeout_s} s"}
        except (asyncio.IncompleteReadError, ProtocolError) as exc:
            hello = {"error": f"the launcher ended without a report ({type(exc).__name__})"}
        pid = hello.get("pid")
        if hello.get("sandbox") == "ready" and isinstance(pid, int) and pid > 0:
            rules._rules_pid = pid
            return rules
        detail = str(hello.get("error") or "unknown launcher reply")[:300]
        rules.failure = RulesFailure("sandbox", detail)
        log.warning("%s", rules.failure)
        await rules.close()
        return rules

    @property
    def pid(self) -> int:
        """Host process id of the rules process (init of the match's PID namespace)."""
        return self._rules_pid

    async def _call(self, request: dict[str, Any], *, limit_s: float) -> dict[str, Any]:
        if self.failure is not None:
            raise self.failure
        assert self._proc is not None
        assert self._proc.stdin is not None and self._proc.stdout is not None
        before = _cpu_sample(self._rules_pid)
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
        after = _cpu_sample(self._rules_pid)
        if request["op"] == "input" and before is not None and after is not None:
            used = max(after[0] - before[0], after[1] - before[1]) / 1e9
            if used > self.limits.cpu_per_input_s:
                raise await self._fail("cpu_limit", f"an input took {used * 1e3:.0f} ms of CPU")
        if "error" in reply:
            raise await self._fail("protocol", f"rules answered error: {str(reply['error'])[:200]}")
        return reply

    async def _exit_code(self) -> int | None:
        if self._proc is None:
            return None
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(self._proc.wait(), 1.0)
        return None

    async def _fail(self, reason: str, detail: str) -> RulesFailure:
        self.failure = RulesFailure(reason, detail)
        log.warning("rules process %d: %s", self._rules_pid, self.failure)
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
        """End the match's processes, remove the bundle copy and give back the uid.

        The supervisor kills and reaps the match's init on SIGTERM, and the kernel kills
        everything else in its PID namespace, so once the supervisor has exited no
        process of the match is left; SIGKILL to its group is the fallback.
        """
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 5.0)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), 5.0)
        if proc is not None and proc.stdin is not None:
            proc.stdin.close()
        shutil.rmtree(self._workdir.parent, ignore_errors=True)
        if self._lease is not None and (proc is None or proc.returncode is not None):
            self._lease.release()
            self._lease = None


async def probe_sandbox() -> str | None:
    """Why this host cannot sandbox game rules (one sentence), or None when it can.

    Builds the whole sandbox once around an empty entry program, so a node can learn at
    start-up, rather than at its first match, that it cannot referee.
    """
    with tempfile.TemporaryDirectory(prefix="fairdht-probe-") as tmp:
        (Path(tmp) / "rules.py").write_text("")
        rules = await RulesProcess.launch(Path(tmp))
        await rules.close()
    return None if rules.failure is None else str(rules.failure)
