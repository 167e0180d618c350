"""Trusted bootstrap of a sandboxed rules process: ``python -I -m fairdht.game.launcher CONFIG``.

It runs before any bundle code, in two processes (docs/game-rules.md, "Sandbox"):

- the **supervisor** (the referee's child) enters new mount, network, IPC and PID
  namespaces (and a user namespace when not root), forks the match's init, tells the
  referee ``{"sandbox": "ready", "pid": HOST_PID}`` or ``{"sandbox": "unavailable",
  "error": SENTENCE}`` in one frame on stdout, then only waits; on SIGTERM it kills the
  init and reaps it, so when the supervisor has exited every process of the match is gone;
- the **init** (pid 1 of the new PID namespace) builds its own root file system with
  its own /proc, sets the rlimits, drops to the match's uid (root) or drops every capability
  (user namespace), sets no-new-privileges and loads the seccomp filter, then runs the
  bundle's entry in-process. When it dies, the kernel kills everything it forked.
"""

from __future__ import annotations

# Preloaded for the rules: cheap, and what most rules import is ready before the filter.
import bisect  # noqa: F401
import collections  # noqa: F401
import dataclasses  # noqa: F401
import enum  # noqa: F401
import functools  # noqa: F401
import hashlib  # noqa: F401
import heapq  # noqa: F401
import itertools  # noqa: F401
import json
import math  # noqa: F401
import os
import random  # noqa: F401
import resource
import signal
import struct  # noqa: F401
import sys
import typing  # noqa: F401
from pathlib import Path
from types import FrameType
from typing import Any

import msgpack

import fairdht
import fairdht.game.sdk  # the rules SDK, preloaded
from fairdht.game import namespaces
from fairdht.game.frames import encode_frame
from fairdht.game.namespaces import SandboxUnavailable

__all__ = ["BUNDLE_MOUNT", "main"]

BUNDLE_MOUNT = "/bundle"
# Threads count against RLIMIT_NPROC too; forks are refused by the seccomp filter.
NPROC_LIMIT = 16
_EXIT_SANDBOX = 70  # EX_SOFTWARE: the sandbox could not be built


def _system_paths() -> list[str]:
    """What the interpreter may still read: its libraries and fairdht's sources, read-only."""
    paths = ["/usr", "/etc/ld.so.cache", str(Path(fairdht.__file__).parent)]
    paths += [p for p in sys.path if p and os.path.isdir(p)]
    return paths


def _set_limits(config: dict[str, Any]) -> None:
    memory = int(config["memory_bytes"])
    cpu = int(config["cpu_per_match_s"])
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (32, 32))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NPROC, (NPROC_LIMIT, NPROC_LIMIT))


def _confine(config: dict[str, Any], uid: int | None) -> str:
    """Everything between fork and the first line of bundle code; returns the entry's source."""
    from fairdht.game.seccomp_filter import install_filter  # loaded by _check_seccomp

    os.umask(0o022)
    # The new root holds each library directory at its real path: import from those.
    sys.path[:] = [os.path.realpath(p) for p in sys.path if p]
    workdir = Path(config["workdir"])
    namespaces.build_root(workdir / "root", workdir / "bundle", _system_paths())
    _set_limits(config)
    if uid is not None:
        # Leaving uid 0 empties every capability set (capabilities(7)).
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    else:
        namespaces.drop_capabilities()
    if namespaces.effective_capabilities() != 0:
        raise SandboxUnavailable("the rules process kept capabilities after dropping them")
    # A change of credentials clears the parent-death signal: set it again, last.
    namespaces.set_parent_death_signal(signal.SIGKILL)
    namespaces.set_no_new_privs()
    install_filter()
    with open(os.path.join(BUNDLE_MOUNT, config["entry"]), encoding="utf-8") as handle:
        return handle.read()


def _run_init(config: dict[str, Any], uid: int | None, ready_w: int, go_r: int) -> int:
    namespaces.set_parent_death_signal(signal.SIGKILL)
    try:
        source = _confine(config, uid)
    except (SandboxUnavailable, OSError, ImportError) as exc:
        os.write(ready_w, str(exc).encode()[:500])
        return _EXIT_SANDBOX
    os.write(ready_w, b"ok")
    os.close(ready_w)
    if os.read(go_r, 1) != b"g":  # the supervisor is gone
        return _EXIT_SANDBOX
    os.close(go_r)
    entry = config["entry"]
    path = os.path.join(BUNDLE_MOUNT, entry)
    os.environ.clear()
    os.chdir(BUNDLE_MOUNT)
    sys.path[:] = [BUNDLE_MOUNT, *[p for p in sys.path if p]]
    sys.argv = [entry]
    exec(compile(source, path, "exec"), {"__name__": "__main__", "__file__": path})
    return 0


def _init_process(config: dict[str, Any], uid: int | None, ready_w: int, go_r: int) -> None:
    """Body of the forked init; never returns into the supervisor's code."""
    code = 1
    try:
        code = _run_init(config, uid, ready_w, go_r)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # the rules' own crash: the exit status tells the referee
        code = 1
    finally:
        try:
            sys.stdout.flush()
        finally:
            os._exit(code)


def _hello(message: dict[str, Any]) -> None:
    sys.stdout.buffer.write(encode_frame(msgpack.packb(message, use_bin_type=True)))
    sys.stdout.buffer.flush()


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 512):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def _check_seccomp() -> None:
    try:
        import fairdht.game.seccomp_filter  # noqa: F401 - loads libseccomp
    except (ImportError, OSError, RuntimeError):
        raise SandboxUnavailable(
            "libseccomp is missing (Debian: apt-get install libseccomp2)"
        ) from None


def main(argv: list[str]) -> int:
    """Supervise one match: build its namespaces, fork its init, report, wait for it."""
    config = json.loads(argv[0])
    # The supervisor dies with the referee, and the init with the supervisor.
    namespaces.set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != int(config["parent"]):
        return _EXIT_SANDBOX
    as_root = os.geteuid() == 0
    uid = config.get("uid") if as_root else None
    try:
        _check_seccomp()
        if as_root and not isinstance(uid, int):
            raise SandboxUnavailable("no uid was leased for the match")
        namespaces.enter_namespaces(as_root=as_root)
    except SandboxUnavailable as exc:
        _hello({"sandbox": "unavailable", "error": str(exc)})
        return _EXIT_SANDBOX
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        os.close(go_w)
        _init_process(config, uid, ready_w, go_r)
    os.close(ready_w)
    os.close(go_r)

    def stop(_signum: int, _frame: FrameType | None) -> None:
        # Only the supervisor reaps the init, and not before it blocks SIGTERM (below).
        os.kill(pid, signal.SIGKILL)

    signal.signal(signal.SIGTERM, stop)
    status = _read_all(ready_r)
    if status == b"ok":
        _hello({"sandbox": "ready", "pid": pid})
        os.write(go_w, b"g")
    else:
        _hello({"sandbox": "unavailable", "error": status.decode(errors="replace")})
        os.kill(pid, signal.SIGKILL)
    os.close(go_w)
    # From here the match's pipes belong to the init alone: its death is the referee's EOF.
    os.close(0)
    os.close(1)
    # Wait without reaping first: until the init is reaped its pid cannot be reused, so a
    # late SIGTERM's kill can only hit the zombie; then block SIGTERM and reap.
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    _, wait_status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(wait_status)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
