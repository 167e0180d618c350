"""Escapes that hostile rules tried through a root referee (issue 12), and why each fails now.

Each test runs the attack from inside a real sandboxed rules process and checks the
host from outside: /proc for surviving processes, the other match's outcome, the host's
socket, the host's /tmp and /dev/shm.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hostile_rules import (
    one_input,
    pid_namespace,
    processes_in,
    processes_of_uid,
    real_uid,
    rules_bundle,
    sandbox_missing,
)

from fairdht.game.sandbox import Limits, RulesProcess
from fairdht.game.uid_pool import UID_BASE, UID_SLOTS

# Attacks do real work (2,000 mkdirs); the 50 ms per-input budget is tested elsewhere.
ROOMY = Limits(call_timeout_s=10.0, cpu_per_input_s=5.0)


@pytest.fixture(autouse=True)
def _needs_sandbox() -> None:
    if why := sandbox_missing():
        pytest.skip(f"this host cannot build the rules sandbox: {why}")


FORK_AND_SETSID = """        import os, time
        made, refused = 0, "none"
        for _ in range(64):
            try:
                pid = os.fork()
            except OSError as exc:
                refused = type(exc).__name__
                continue
            if pid == 0:
                os.setsid()
                hog = bytearray(32 * 2**20)
                time.sleep(3600)
                os._exit(0)
            made += 1
        return f"forked={made} refused={refused} pid={os.getpid()}"
"""


def test_fork_and_setsid_children_do_not_outlive_the_match(tmp_path: Path) -> None:
    async def go() -> tuple[str | None, str | None, int]:
        rules = await RulesProcess.launch(rules_bundle(tmp_path, FORK_AND_SETSID), limits=ROOMY)
        try:
            await rules.start({}, ["aa"], 0)
            namespace = pid_namespace(rules.pid)
            uid = real_uid(rules.pid)
            report = await rules.input("aa", None, 1)
            assert processes_in(namespace or "") == [rules.pid]  # alone in its namespace
        finally:
            await rules.close()
        return report, namespace, uid

    report, namespace, uid = asyncio.run(go())
    # The seccomp filter refuses fork; the rules are pid 1 of their own namespace.
    assert report == "forked=0 refused=PermissionError pid=1"
    assert namespace is not None and namespace != pid_namespace(os.getpid())
    assert processes_in(namespace) == []
    if os.geteuid() == 0:
        assert UID_BASE <= uid < UID_BASE + UID_SLOTS
        assert processes_of_uid(uid) == []


SIGNAL_OTHERS = """        import os, signal
        out = []
        for target in (payload["pid"], -1):
            try:
                os.kill(target, signal.SIGSTOP)
                out.append("sent")
            except OSError as exc:
                out.append(type(exc).__name__)
        return " ".join(out)
"""


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        return handle.read().rsplit(")", 1)[1].split()[0]


def test_rules_cannot_signal_another_match(tmp_path: Path) -> None:
    victim_dir = rules_bundle(tmp_path, "        return None", name="victim")
    attacker_dir = rules_bundle(tmp_path, SIGNAL_OTHERS, name="attacker")

    async def go() -> tuple[str | None, str, dict[str, Any], tuple[int, int]]:
        victim = await RulesProcess.launch(victim_dir, limits=ROOMY)
        attacker = await RulesProcess.launch(attacker_dir, limits=ROOMY)
        try:
            await asyncio.gather(victim.start({}, ["aa"], 0), attacker.start({}, ["aa"], 0))
            uids = (real_uid(victim.pid), real_uid(attacker.pid))
            report = await attacker.input("aa", {"pid": victim.pid}, 1)
            state = _state(victim.pid)
            assert await victim.input("aa", {"move": 1}, 2) is None
            await victim.tick(3)
            result = await victim.end(4)
        finally:
            await asyncio.gather(victim.close(), attacker.close())
        return report, state, result, uids

    report, state, result, (victim_uid, attacker_uid) = asyncio.run(go())
    assert "sent" not in (report or "")
    assert state not in {"T", "t"}  # not stopped
    assert result == {"scores": {}}  # the victim's match completed
    if os.geteuid() == 0:
        assert victim_uid != attacker_uid


CONNECT_HOST_SOCKET = """        import os, socket
        out = ["visible" if os.path.exists(payload["path"]) else "hidden"]
        for address in (payload["path"], "\\0" + payload["abstract"]):
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(address)
                out.append("connected")
            except OSError as exc:
                out.append(type(exc).__name__)
        return " ".join(out)
"""


def test_host_unix_sockets_are_out_of_reach(tmp_path: Path) -> None:
    path = tmp_path / "host.sock"
    abstract = f"fairdht-sandbox-test-{secrets.token_hex(6)}"
    with (
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as by_path,
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as by_name,
    ):
        by_path.bind(str(path))
        by_name.bind("\0" + abstract)
        for server in (by_path, by_name):
            server.listen(8)
            server.setblocking(False)
        bundle = rules_bundle(tmp_path, CONNECT_HOST_SOCKET)
        report = asyncio.run(one_input(bundle, {"path": str(path), "abstract": abstract}, ROOMY))
        for server in (by_path, by_name):
            with pytest.raises(BlockingIOError):
                server.accept()  # nobody connected
    # Not in the rules' file system, and no socket may be made at all.
    assert report == "hidden PermissionError PermissionError"


LITTER = """        import os
        made = []
        for base, count in (("/tmp", 2000), ("/dev/shm", 200)):
            n = 0
            for i in range(count):
                try:
                    os.mkdir(f"{base}/{payload}-{i}")
                    n += 1
                except OSError:
                    break
            made.append(f"{base}={n}")
        return " ".join(made)
"""


def _litter(token: str) -> list[str]:
    return [
        f"{base}/{name}"
        for base in ("/tmp", "/dev/shm")
        for name in os.listdir(base)
        if name.startswith(token)
    ]


def test_temp_litter_stays_inside_the_match(tmp_path: Path) -> None:
    token = f"fairdht-litter-{secrets.token_hex(6)}"

    async def go() -> tuple[str | None, list[str]]:
        rules = await RulesProcess.launch(rules_bundle(tmp_path, LITTER), limits=ROOMY)
        try:
            await rules.start({}, ["aa"], 0)
            report = await rules.input("aa", token, 1)
            during = _litter(token)
        finally:
            await rules.close()
        return report, during

    report, during = asyncio.run(go())
    assert report == "/tmp=2000 /dev/shm=200"  # the attack ran, in the match's own tmpfs
    assert during == []
    assert _litter(token) == []


EXEC_SHELL = """        import os, subprocess
        out = ["sh-present" if os.path.exists("/bin/sh") else "sh-absent"]
        try:
            os.execv("/bin/sh", ["sh", "-c", "exit 0"])
        except OSError as exc:
            out.append("execv:" + type(exc).__name__)
        try:
            subprocess.run(["/bin/sh", "-c", "exit 0"], check=False)
            out.append("run:ok")
        except OSError as exc:
            out.append("run:" + type(exc).__name__)
        return " ".join(out)
"""


def test_exec_of_bin_sh_is_refused(tmp_path: Path) -> None:
    report = asyncio.run(one_input(rules_bundle(tmp_path, EXEC_SHELL), None, ROOMY))
    # /bin/sh is there to read; the seccomp filter refuses to run it, and the rules go on.
    assert report == "sh-present execv:PermissionError run:PermissionError"


PID_NAMESPACE_INIT = """
import json, os, signal, sys, time
from fairdht.game import namespaces

namespaces.enter_namespaces(as_root=os.geteuid() == 0)
ready_r, ready_w = os.pipe()
init = os.fork()
if init == 0:
    for _ in range(8):
        middle = os.fork()
        if middle == 0:
            os.setsid()
            if os.fork() == 0:  # orphaned at once: the namespace's init adopts it
                time.sleep(600)
            os._exit(0)
        os.waitpid(middle, 0)
    os.write(ready_w, b"x")
    time.sleep(600)
    os._exit(0)
os.close(ready_w)
os.read(ready_r, 1)
namespace = os.readlink(f"/proc/{init}/ns/pid")

def members():
    found = 0
    for entry in os.listdir("/proc"):
        try:
            found += entry.isdigit() and os.readlink(f"/proc/{entry}/ns/pid") == namespace
        except OSError:
            pass
    return found

before = members()
os.kill(init, signal.SIGKILL)
os.waitpid(init, 0)
print(json.dumps({"before": before, "after": members()}))
"""


def test_a_forked_setsid_tree_dies_with_the_namespace_init(tmp_path: Path) -> None:
    # The layer under the seccomp filter: were a fork ever allowed, PID namespaces
    # (fairdht.game.namespaces, as the launcher enters them) still end the whole tree.
    script = tmp_path / "init.py"
    script.write_text(PID_NAMESPACE_INIT)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == {"before": 9, "after": 0}


SELF_REPORT = """        import os, resource
        with open("/proc/self/status") as status:
            fields = dict(line.split(":", 1) for line in status)
        nproc = resource.getrlimit(resource.RLIMIT_NPROC)[0]
        keys = ("NoNewPrivs", "Seccomp", "CapEff")
        return " ".join(f"{k}={fields[k].strip()}" for k in keys) + f" nproc={nproc}"
"""


def test_rules_run_with_no_new_privileges_a_filter_and_a_process_limit(tmp_path: Path) -> None:
    report = asyncio.run(one_input(rules_bundle(tmp_path, SELF_REPORT), None, ROOMY))
    assert report == "NoNewPrivs=1 Seccomp=2 CapEff=0000000000000000 nproc=16"


THREAD_FLOOD = """        import threading, time
        started = 0
        for _ in range(64):
            try:
                threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
                started += 1
            except RuntimeError:
                break
        return str(started)
"""


def test_a_thread_flood_stops_at_the_process_limit(tmp_path: Path) -> None:
    report = asyncio.run(one_input(rules_bundle(tmp_path, THREAD_FLOOD), None, ROOMY))
    # Each thread reserves a stack and a malloc arena inside the 256 MiB address space,
    # and RLIMIT_NPROC 16 counts threads too: a flood stops after a few (4 measured here).
    assert report is not None and 1 <= int(report) < 16
