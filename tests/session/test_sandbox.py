"""Untrusted rules run in a sandbox: hangs, memory bombs, crashes and snooping end the match,
never the referee."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from hostile_rules import sandbox_missing

from fairdht.game.sandbox import Limits, RulesFailure, RulesProcess

HEADER = """
from fairdht.game.sdk import Rules, serve

class R(Rules):
    def start(self, match, players, now):
        pass
    def tick(self, now):
        return {}, False
    def end(self, now):
        return {"scores": {}}
"""


@pytest.fixture(autouse=True)
def _needs_sandbox() -> None:
    if why := sandbox_missing():
        pytest.skip(f"this host cannot build the rules sandbox: {why}")


def bundle(tmp_path: Path, input_body: str) -> Path:
    d = tmp_path / "bundle"
    d.mkdir()
    (d / "rules.py").write_text(
        HEADER + "    def input(self, player, payload, now):\n" + input_body + "\nserve(R())\n"
    )
    return d


def run_input(path: Path, limits: Limits | None = None) -> str | None:
    async def go() -> str | None:
        rules = await RulesProcess.launch(path, limits=limits or Limits(call_timeout_s=2.0))
        try:
            await rules.start({}, ["aa"], 0)
            return await rules.input("aa", {"t": "x"}, 1)
        finally:
            await rules.close()

    return asyncio.run(go())


def test_endless_loop_is_stopped(tmp_path: Path) -> None:
    with pytest.raises(RulesFailure) as info:
        run_input(
            bundle(tmp_path, "        while True:\n            pass"), Limits(call_timeout_s=1.0)
        )
    assert info.value.reason == "timeout"


def test_cpu_budget_per_input(tmp_path: Path) -> None:
    body = (
        "        x = 0\n        for i in range(3_000_000):\n            x += i\n        return None"
    )
    with pytest.raises(RulesFailure) as info:
        run_input(bundle(tmp_path, body), Limits(call_timeout_s=30.0, cpu_per_input_s=0.05))
    assert info.value.reason == "cpu_limit"


def test_cpu_burnt_in_a_thread_counts_against_the_input_budget(tmp_path: Path) -> None:
    body = """        import threading
        def burn():
            x = 0
            for i in range(3_000_000):
                x += i
        worker = threading.Thread(target=burn)
        worker.start()
        worker.join()
        return None"""
    with pytest.raises(RulesFailure) as info:
        run_input(bundle(tmp_path, body), Limits(call_timeout_s=30.0, cpu_per_input_s=0.05))
    assert info.value.reason == "cpu_limit"


def test_unbounded_allocation_is_stopped(tmp_path: Path) -> None:
    body = "        hog = []\n        while True:\n            hog.append(bytearray(10_000_000))"
    with pytest.raises(RulesFailure) as info:
        run_input(bundle(tmp_path, body), Limits(call_timeout_s=10.0, cpu_per_input_s=10.0))
    assert info.value.reason in {"crashed", "protocol"}


def test_crash_is_reported(tmp_path: Path) -> None:
    with pytest.raises(RulesFailure) as info:
        run_input(bundle(tmp_path, "        raise SystemExit(3)"))
    assert info.value.reason == "crashed"


def test_rules_see_no_environment_no_key_file_and_no_network(tmp_path: Path) -> None:
    secret = tmp_path / "node.key"
    secret.write_text("fairdht-ed25519-seed v1\n" + "ab" * 32 + "\n")
    os.chmod(secret, 0o600)
    os.environ["FAIRDHT_TEST_SECRET"] = "hunter2"
    body = f"""        import os, socket
        found = []
        if os.environ:
            found.append("env:" + ",".join(sorted(os.environ)))
        try:
            found.append("key:" + open({str(secret)!r}).read()[:10])
        except OSError as exc:
            pass
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.sendto(b"x", ("127.0.0.1", 9))
            found.append("net")
        except OSError:
            pass
        return ";".join(found) or "nothing"
"""
    try:
        reason = run_input(bundle(tmp_path, body))
    finally:
        del os.environ["FAIRDHT_TEST_SECRET"]
    # Root or not, the rules' own root file system has no key file, and they have no network.
    assert reason == "nothing"


def test_a_symlink_in_the_bundle_is_refused_not_followed(tmp_path: Path) -> None:
    secret = tmp_path / "node.key"
    secret.write_text("secret\n")
    os.chmod(secret, 0o600)
    path = bundle(tmp_path, "        return None")
    (path / "data.txt").symlink_to(secret)
    with pytest.raises(RulesFailure) as info:
        run_input(path)
    assert info.value.reason == "crashed"
    assert "symlink" in str(info.value)
    assert oct(secret.stat().st_mode & 0o777) == "0o600"  # never chmod-ed through the link


def test_rules_see_their_own_small_root_and_may_import_the_standard_library(
    tmp_path: Path,
) -> None:
    body = f"""        import os, fractions, statistics
        seen = [sorted(os.listdir("/etc")), os.listdir("/tmp"), os.listdir("/dev/shm")]
        seen += [os.path.exists(p) for p in ("/var", "/run", "/sys", {str(tmp_path)!r})]
        seen.append(str(statistics.mean([fractions.Fraction(1, 2), 1])))
        return repr(seen)"""
    reason = run_input(bundle(tmp_path, body), Limits(call_timeout_s=5.0, cpu_per_input_s=5.0))
    assert reason == repr([["ld.so.cache"], [], [], False, False, False, False, "3/4"])
