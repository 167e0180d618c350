"""Hostile game rules for the sandbox tests: bundles whose ``input`` does the attack.

The rules' answer to the input is their report (the referee keeps 200 characters of a
refusal reason), so an attack says what it managed from inside the sandbox, and the
test checks the host from outside.
"""

from __future__ import annotations

import asyncio
import functools
import os
from pathlib import Path

from fairdht.game.sandbox import Limits, RulesProcess, probe_sandbox

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


def rules_bundle(parent: Path, input_body: str, *, name: str = "bundle") -> Path:
    """A bundle whose rules run ``input_body`` (indented 8 spaces) for every input."""
    d = parent / name
    d.mkdir()
    (d / "rules.py").write_text(
        HEADER + "    def input(self, player, payload, now):\n" + input_body + "\nserve(R())\n"
    )
    return d


def pid_namespace(pid: int) -> str | None:
    """The PID namespace a host process is in, e.g. ``pid:[4026532301]``."""
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def processes_in(namespace: str) -> list[int]:
    """Host pids of every process still in ``namespace`` (zombies included)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and pid_namespace(int(entry)) == namespace:
            found.append(int(entry))
    return found


def processes_of_uid(uid: int) -> list[int]:
    """Host pids whose real uid is ``uid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status", encoding="ascii") as handle:
                for line in handle:
                    if line.startswith("Uid:") and int(line.split()[1]) == uid:
                        found.append(int(entry))
        except OSError:
            continue
    return found


def real_uid(pid: int) -> int:
    """The real uid of a host process."""
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("Uid:"):
                return int(line.split()[1])
    raise LookupError(pid)


@functools.cache
def sandbox_missing() -> str | None:
    """Why this host cannot build the rules sandbox, or None when it can."""
    return asyncio.run(probe_sandbox())


async def one_input(path: Path, payload: object = None, limits: Limits | None = None) -> str | None:
    """Start a match on ``path``, send one input, close; the rules' answer."""
    rules = await RulesProcess.launch(path, limits=limits or Limits(call_timeout_s=5.0))
    try:
        await rules.start({}, ["aa"], 0)
        return await rules.input("aa", payload, 1)
    finally:
        await rules.close()
