"""``GET /api/servers?network=`` and ``GET /api/servers/{author}``: a network's server list.

A network the node follows is answered from its replica (fairdht.node.live), at most
one round old; any other network is read from the DHT on request with the data dir's
trust policy, exactly as ``fairdht servers`` reads it. The document is the one of
``fairdht servers --json``; ``karma=1`` adds each author's karma in the node's view.
Each server's ``reachable`` is the node's cached probe result (docs/serverlist.md
§1.11): requests never send probes, the follower does, within its budget.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from fairdht.api.context import NODE
from fairdht.api.errors import ApiError
from fairdht.api.karmaview import install, read_view
from fairdht.api.params import flag, network_param, public_key_param
from fairdht.api.timing import timed_get
from fairdht.app.servers import list_document as app_list_document
from fairdht.app.servers import read_list
from fairdht.karma.score import karma_of
from fairdht.node.live import LiveServerLists
from fairdht.serverlist.listing import Entry
from fairdht.serverlist.sync import SyncResult

__all__ = [
    "current_list",
    "get_author",
    "get_servers",
    "list_document",
    "register",
    "server_json",
]


async def current_list(request: web.Request, network: str) -> tuple[SyncResult, int | None]:
    """The newest list of ``network`` and when it was read (None: read just now)."""
    node = request.app[NODE]
    live = node.live
    if live is not None and network in live.networks:
        result = live.latest(network)
        if result is None:
            result = (await live.sync_once()).get(network)
        if result is None:
            raise ApiError(503, f"the node could not read {network} yet; no peer answered")
        return result, int(live.synced_at.get(network, node.clock()))
    result = await read_list(
        timed_get(request),
        network,
        node.data_dir.root,
        now=node.clock(),
        control_get=node.dht.secure_get,
    )
    return result, None


def server_json(entry: Entry, live: LiveServerLists | None) -> dict[str, Any]:
    """One server object: ``Entry.to_json`` plus the cached ``reachable`` (null: unknown)."""
    if live is not None:
        return live.entry_json(entry)
    doc = entry.to_json()
    doc["reachable"] = None
    return doc


def list_document(
    result: SyncResult, network: str, now: float, live: LiveServerLists | None = None
) -> dict[str, Any]:
    """The document of ``fairdht servers --json`` (fairdht.app.servers.list_document)."""
    return app_list_document(result, network, now, lambda e: server_json(e, live))


async def _add_karma(request: web.Request, network: str, servers: list[dict[str, Any]]) -> None:
    authors = sorted({bytes.fromhex(s["author"]) for s in servers})
    if not authors:
        return
    view = (await read_view(request, network, authors)).view
    for server in servers:
        score, color = karma_of(view, bytes.fromhex(server["author"]))
        server["karma"] = {"score": round(score, 6), "color": color}


async def get_servers(request: web.Request) -> web.Response:
    """The listed servers of a network, with the state root and checkpoint version."""
    network = network_param(request)
    with_karma = flag(request, "karma")
    node = request.app[NODE]
    result, synced_at = await current_list(request, network)
    doc = list_document(result, network, node.clock(), node.live)
    doc["synced_at"] = synced_at
    if with_karma:
        await _add_karma(request, network, doc["servers"])
    return web.json_response(doc)


def _of(
    entries: tuple[Entry, ...], author: bytes, live: LiveServerLists | None
) -> list[dict[str, Any]]:
    return [server_json(e, live) for e in entries if e.record.author == author]


async def get_author(request: web.Request) -> web.Response:
    """One author key's servers: listed, and held back (quarantined, capped, distrusted)."""
    author = public_key_param(request.match_info["author"], "the author")
    network = network_param(request)
    with_karma = flag(request, "karma")
    result, synced_at = await current_list(request, network)
    listing = result.listing
    live = request.app[NODE].live
    servers = _of(listing.listed, author, live)
    held = {
        "quarantined": _of(listing.quarantined, author, live),
        "capped": _of(listing.capped, author, live),
        "distrusted": _of(listing.distrusted, author, live),
    }
    if not servers and not any(held.values()):
        raise ApiError(404, f"author {author.hex()} has no server on {network}")
    doc: dict[str, Any] = {
        "author": author.hex(),
        "network": network,
        "servers": servers,
        "held_back": held,
        "synced_at": synced_at,
    }
    if with_karma:
        view = (await read_view(request, network, [author])).view
        score, color = karma_of(view, author)
        doc["karma"] = {"score": round(score, 6), "color": color}
    return web.json_response(doc)


def register(app: web.Application) -> None:
    """Add the server-list routes."""
    install(app)
    app.router.add_get("/api/servers", get_servers)
    app.router.add_get("/api/servers/{author}", get_author)
