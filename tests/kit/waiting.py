"""Bounded polling and command results, shared by the process and multi-host tests."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest

__all__ = ["ok", "wait_for"]


def wait_for(predicate: Callable[[], Any], *, timeout: float, what: str, every: float = 0.2) -> Any:
    """Poll ``predicate`` every ``every`` s until it returns a true value; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def ok(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The JSON document of a command that must have succeeded."""
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}"
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc
