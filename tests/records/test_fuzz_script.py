"""The atheris harness (scripts/fuzz) keeps working: every target holds its invariant
over a seeded corpus of mutated valid inputs, without atheris installed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "fuzz" / "fuzz_decoders.py"


def test_every_fuzz_target_holds_its_invariant_on_mutated_inputs() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "2000"],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    for target in ("record", "datagram", "frame", "probe", "hello"):
        assert f"{target}: 2000 inputs, invariant held" in done.stdout
