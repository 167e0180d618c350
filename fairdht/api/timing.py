"""The latency histogram of DHT lookups made for API requests (``GET /metrics``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from fairdht.api.context import NODE
from fairdht.node.latency import Histogram, timed
from fairdht.records.envelope import Record

__all__ = ["LOOKUP_SECONDS", "install", "timed_get"]

LOOKUP_SECONDS = web.AppKey("fairdht.lookup_seconds", Histogram)


def install(app: web.Application) -> None:
    """Give ``app`` its lookup histogram (once, from any route module)."""
    if LOOKUP_SECONDS not in app:
        app[LOOKUP_SECONDS] = Histogram()


def timed_get(
    request: web.Request, *, include_withdrawn: bool = False, disjoint: bool = False
) -> Callable[[bytes], Awaitable[list[Record]]]:
    """The node's ``DHTNode.get``, each call observed in the app's lookup histogram."""
    dht = request.app[NODE].dht

    async def get(key: bytes) -> list[Record]:
        return await dht.get(key, include_withdrawn=include_withdrawn, disjoint=disjoint)

    if LOOKUP_SECONDS not in request.app:
        return get
    return timed(request.app[LOOKUP_SECONDS], get)
