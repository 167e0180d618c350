"""Shared test helpers live in tests/kit/ and are importable from every test folder."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "kit"))
