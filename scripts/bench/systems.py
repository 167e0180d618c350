"""Which systems under test can run here; a missing anchor is reported, not fatal."""

from __future__ import annotations

import importlib
import importlib.util

__all__ = ["ALL_SYSTEMS", "available_systems"]

ALL_SYSTEMS = ("fairdht", "kademlia", "opendht")


def _why_unavailable(system: str) -> str | None:
    if system == "opendht":
        # An anchor, not a dependency: without it the benchmarks report n/a.
        try:
            importlib.import_module("opendht")
        except ImportError:
            return "opendht is not installed (pip install opendht)"
        return None
    if system == "fairdht":
        try:
            dht = importlib.import_module("fairdht.dht")
        except ImportError as exc:
            return f"fairdht.dht does not import: {exc}"
        if not hasattr(dht, "DHTNode") or not hasattr(dht, "connect"):
            return "fairdht.dht has no DHTNode/connect yet"
        return None
    if system == "kademlia":
        if importlib.util.find_spec("kademlia") is None:
            return "kademlia is not installed"
        return None
    return f"unknown system {system!r}"


def available_systems(wanted: str | None) -> tuple[list[str], dict[str, str]]:
    """(systems that can run, {system: why not}) among ``wanted`` (comma list, default all)."""
    names = [s.strip() for s in wanted.split(",")] if wanted else list(ALL_SYSTEMS)
    ok: list[str] = []
    missing: dict[str, str] = {}
    for name in names:
        why = _why_unavailable(name)
        if why is None:
            ok.append(name)
        else:
            missing[name] = why
    return ok, missing
