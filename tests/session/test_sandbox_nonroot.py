"""A referee that is not root (a home referee) gets the same sandbox, or refuses the match.

The referee runs in a user namespace as uid 65534 (``unshare --user --map-user``), so
the sandbox takes its non-root path: a user namespace of its own, no uid change, every
capability dropped. Outside, that referee is still the owner of the test's 0600 key
file, so only the sandbox's own root file system keeps the rules from reading it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hostile_rules import rules_bundle

REFEREE = """
import asyncio, errno, json, os, sys
from pathlib import Path
from fairdht.game.sandbox import Limits, RulesFailure, RulesProcess, probe_sandbox

bundle, key, mode = sys.argv[1:4]
if mode == "deny-unshare":
    # What a distro that restricts user namespaces does to this referee.
    import pyseccomp
    restrict = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
    restrict.add_rule(pyseccomp.ERRNO(errno.EPERM), "unshare")
    restrict.load()
os.environ["FAIRDHT_TEST_SECRET"] = "hunter2"
report = {"referee_uid": os.geteuid(), "referee_reads_key": open(key).read()[:7]}

async def go():
    limits = Limits(call_timeout_s=5.0, cpu_per_input_s=5.0)
    rules = await RulesProcess.launch(Path(bundle), limits=limits)
    try:
        await rules.start({}, ["aa"], 0)
        return await rules.input("aa", {"key": key}, 1)
    finally:
        await rules.close()

report["probe"] = asyncio.run(probe_sandbox())
try:
    report["rules"] = asyncio.run(go())
except RulesFailure as exc:
    report["failure"] = [exc.reason, str(exc)]
print(json.dumps(report))
"""

SNOOP = """        import os, socket
        found = []
        if os.environ:
            found.append("env")
        try:
            open(payload["key"]).read()
            found.append("key")
        except OSError as exc:
            found.append("key:" + type(exc).__name__)
        try:
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("127.0.0.1", 9))
            found.append("net")
        except OSError as exc:
            found.append("net:" + type(exc).__name__)
        for name, attempt in (("exec", lambda: os.execv("/bin/sh", ["sh"])), ("fork", os.fork)):
            try:
                attempt()
                found.append(name)
            except OSError as exc:
                found.append(name + ":" + type(exc).__name__)
        with open("/proc/self/status") as status:
            caps = [line.split()[1] for line in status if line.startswith("CapEff")]
        procs = [p for p in os.listdir("/proc") if p.isdigit()]
        found.append(f"pid={os.getpid()} procs={len(procs)} capeff={caps[0]}")
        return " ".join(found)
"""


def run_as_home_referee(tmp_path: Path, mode: str, *, as_root: bool = False) -> dict[str, Any]:
    """Referee the SNOOP rules from a non-root user (or as root); its JSON report."""
    if as_root and os.geteuid() != 0:
        pytest.skip("needs root to run the referee as root")
    if not as_root and shutil.which("unshare") is None:
        pytest.skip("needs util-linux's unshare to run the referee as a non-root user")
    marker = tmp_path / "rules-ran-outside"
    key = tmp_path / "node.key"
    key.write_text("fairdht-ed25519-seed v1\n" + "ab" * 32 + "\n")
    key.chmod(0o600)
    body = f"import os\ntry:\n    os.mkdir({str(marker)!r})\nexcept OSError:\n    pass\n"
    bundle = rules_bundle(tmp_path, SNOOP)
    (bundle / "rules.py").write_text(body + (bundle / "rules.py").read_text())
    script = tmp_path / "referee.py"
    script.write_text(REFEREE)
    argv = [] if as_root else ["unshare", "--user", "--map-user=65534", "--map-group=65534"]
    probe = subprocess.run([*argv, "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip("this host does not let the test create a user namespace for the referee")
    done = subprocess.run(
        [*argv, sys.executable, str(script), str(bundle), str(key), mode],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report: dict[str, Any] = json.loads(done.stdout)
    # In no case did bundle code run where it could reach the test's directory.
    assert not marker.exists()
    return report


def test_a_non_root_referee_builds_the_full_sandbox(tmp_path: Path) -> None:
    report = run_as_home_referee(tmp_path, "userns")
    assert report["referee_uid"] == 65534
    assert report["probe"] is None
    assert report["referee_reads_key"] == "fairdht"  # the referee owns the key file...
    assert report["rules"] == (  # ...its rules see neither it nor anything else
        "key:FileNotFoundError net:PermissionError exec:PermissionError "
        "fork:PermissionError pid=1 procs=1 capeff=0000000000000000"
    )


def test_without_user_namespaces_a_non_root_referee_refuses_the_rules(tmp_path: Path) -> None:
    report = run_as_home_referee(tmp_path, "deny-unshare")
    assert "rules" not in report
    reason, message = report["failure"]
    assert reason == "sandbox"
    assert message == (
        "game rules sandbox: user namespaces are closed to non-root users here "
        "(Operation not permitted); run as root"
    )
    assert len(message) <= 120  # what a match outcome keeps of it
    assert report["probe"] == message  # known at start-up, before any match


def test_a_root_referee_that_cannot_unshare_refuses_the_rules(tmp_path: Path) -> None:
    report = run_as_home_referee(tmp_path, "deny-unshare", as_root=True)
    assert report["referee_uid"] == 0
    assert "rules" not in report
    assert report["probe"] == report["failure"][1]
    assert report["failure"] == [
        "sandbox",
        "game rules sandbox: unshare of namespaces failed as root (Operation not permitted)",
    ]
