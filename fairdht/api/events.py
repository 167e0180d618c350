"""``GET /api/events``: the node's event bus as server-sent events (WHATWG HTML, section 9.2).

A game client keeps its server list live from this stream, as with OpenDHT's listen:
``server.added``/``server.updated`` carry the full server object, ``server.expired``
names the one that left. Each message has an ``id``; a client that reconnects with
``Last-Event-ID`` (or ``?after=ID``) first gets the kept events it missed. A comment
line goes out every ``keep-alive`` seconds so proxies and clients see a live socket.
A client that falls ``DEFAULT_QUEUE`` events behind gets an ``overflow`` message and
the stream ends; it reconnects with its last id.

Each open stream holds a socket, a queue and a task (about 18 KiB: 5,000 held streams
cost 89 MiB), so at most ``MAX_STREAMS`` are open at once and one more is answered
503 with ``Retry-After``. So that one client cannot hold every slot, each client (a
source IP; an IPv6 client by its /64, since a host picks any address of its /64) holds
at most ``MAX_STREAMS_PER_CLIENT`` of them; one more from it is a 503 naming that cap
while other clients still get theirs. A client that goes away frees its slot when the
next write to it fails, within one keep-alive.
"""

from __future__ import annotations

import ipaddress
import json
from collections import Counter

from aiohttp import web

from fairdht.api.context import NODE
from fairdht.api.errors import ApiError
from fairdht.api.params import network_param
from fairdht.api.refusals import count_refusal
from fairdht.node.events import Event, Subscription

__all__ = [
    "DEFAULT_MAX_STREAMS",
    "DEFAULT_MAX_STREAMS_PER_CLIENT",
    "KEEPALIVE_SECONDS",
    "MAX_STREAMS",
    "MAX_STREAMS_PER_CLIENT",
    "STREAMS",
    "client_of",
    "format_event",
    "register",
    "stream_events",
]

KEEPALIVE_SECONDS = web.AppKey("fairdht.events.keepalive", float)
STREAMS = web.AppKey("fairdht.events.streams", set[Subscription])
MAX_STREAMS = web.AppKey("fairdht.events.max_streams", int)
MAX_STREAMS_PER_CLIENT = web.AppKey("fairdht.events.max_streams_per_client", int)
# Open streams per client (``client_of``).
CLIENT_STREAMS = web.AppKey("fairdht.events.client_streams", Counter[str])
# Below the common 30-60 s idle timeouts of proxies and load balancers.
DEFAULT_KEEPALIVE = 15.0
# A dashboard or two and a few game clients per node need a handful; 64 costs ~1 MiB.
DEFAULT_MAX_STREAMS = 64
# A quarter of the default cap: a player's game client and dashboard tabs fit (a
# browser opens at most 6 HTTP/1.1 connections to one host), and four clients are
# needed to take every slot.
DEFAULT_MAX_STREAMS_PER_CLIENT = 16
# Seconds a refused client waits before it tries again (EventSource waits its retry: 3 s).
RETRY_AFTER = "5"


def format_event(event: Event) -> bytes:
    """One SSE message: ``id``, ``event`` (the type) and one ``data`` line of JSON."""
    data = json.dumps(
        {"id": event.id, "type": event.type, "time": event.time, "data": event.data},
        sort_keys=True,
        separators=(",", ":"),
    )
    return f"id: {event.id}\nevent: {event.type}\ndata: {data}\n\n".encode()


def client_of(remote: str | None) -> str:
    """Whom a stream is counted to: the peer's IP, an IPv6 peer's /64 (a host picks any
    address of its /64, so counting addresses would let it open 2^64 clients' share)."""
    if remote is None:
        return "unknown"
    try:
        ip = ipaddress.ip_address(remote.split("%", 1)[0])
    except ValueError:
        return remote
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def _check_caps(request: web.Request, client: str) -> None:
    """Raise a 503 if ``client`` holds its share of streams or the node holds its cap."""
    app = request.app
    per_client = app.get(MAX_STREAMS_PER_CLIENT, DEFAULT_MAX_STREAMS_PER_CLIENT)
    if app[CLIENT_STREAMS][client] >= per_client:
        count_refusal(app, "client_streams")
        raise ApiError(
            503,
            f"this client ({client}) already holds {per_client} event streams of this node "
            "(its --http-max-streams-per-client); close one or retry later",
            headers={"Retry-After": RETRY_AFTER},
        )
    cap = app.get(MAX_STREAMS, DEFAULT_MAX_STREAMS)
    if len(app[STREAMS]) >= cap:
        count_refusal(app, "streams")
        raise ApiError(
            503,
            f"this node already serves {cap} event streams (its --http-max-streams); retry later",
            headers={"Retry-After": RETRY_AFTER},
        )


def _after(request: web.Request) -> int | None:
    text = request.headers.get("Last-Event-ID") or request.query.get("after", "")
    if not text:
        return None
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise ApiError(400, "Last-Event-ID (or after) must be an event id")
    return int(text)


async def stream_events(request: web.Request) -> web.StreamResponse:
    """Stream events (of one network with ``network=``) until the client goes away."""
    network = network_param(request, default=None) if request.query.get("network") else None
    after = _after(request)
    streams = request.app[STREAMS]
    client = client_of(request.remote)
    _check_caps(request, client)
    per_client = request.app[CLIENT_STREAMS]
    node = request.app[NODE]
    keepalive = request.app[KEEPALIVE_SECONDS]
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
        }
    )
    # Subscribe before the headers go out: a client that saw the response misses nothing.
    sub = node.events.subscribe(network=network, after=after)
    streams.add(sub)
    per_client[client] += 1
    try:
        await response.prepare(request)
        await response.write(b"retry: 3000\n: connected\n\n")
        while True:
            event = await sub.next(keepalive)
            if event is not None:
                await response.write(format_event(event))
            elif not sub.closed:
                await response.write(b": keep-alive\n\n")
            else:
                break
        if sub.overflowed:
            await response.write(b'event: overflow\ndata: {"reconnect":true}\n\n')
    except ConnectionResetError:
        pass  # the client went away
    finally:
        sub.close()
        streams.discard(sub)
        per_client[client] -= 1
        if per_client[client] <= 0:
            del per_client[client]
    return response


async def _close_streams(app: web.Application) -> None:
    streams = app[STREAMS]
    for sub in list(streams):
        streams.discard(sub)
        sub.close()


def register(app: web.Application) -> None:
    """Add the event stream route and close open streams when the server shuts down."""
    app[KEEPALIVE_SECONDS] = DEFAULT_KEEPALIVE
    app[STREAMS] = set()
    app[CLIENT_STREAMS] = Counter()
    app.on_shutdown.append(_close_streams)
    app.router.add_get("/api/events", stream_events)
