"""Requests the API refused before any route ran, counted by reason for ``GET /metrics``.

Reasons: ``host`` (a Host the API does not answer: DNS rebinding), ``streams`` (the
cap of open event streams was reached), ``client_streams`` (one client's share of
them was) and ``json`` (a body that is not JSON, or is
nested too deeply to parse).
"""

from __future__ import annotations

from collections import Counter

from aiohttp import web

__all__ = ["REFUSED", "count_refusal", "install"]

REFUSED = web.AppKey("fairdht.api.refused", Counter[str])


def install(app: web.Application) -> None:
    """Give ``app`` its refusal counters."""
    app[REFUSED] = Counter()


def count_refusal(app: web.Application, reason: str) -> None:
    """Count one refused request."""
    if REFUSED in app:
        app[REFUSED][reason] += 1
