"""The dashboard test reuses the API tests' node kit (tests/api/apikit.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))
