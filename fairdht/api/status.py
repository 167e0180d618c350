"""``GET /api/status``: who the node is, where it listens and what it holds."""

from __future__ import annotations

from aiohttp import web

from fairdht.api.context import NODE

__all__ = ["register", "status"]


async def status(request: web.Request) -> web.Response:
    """Node id, public key, UDP address, contacts, records held, uptime and version."""
    node = request.app[NODE]
    host, port = node.listen
    return web.json_response(
        {
            "node_id": node.node_id.hex(),
            "public_key": node.public_key.hex(),
            "listen": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
            "peers": node.dht.peer_count(),
            "records": node.store.count(),
            "uptime_s": int(node.uptime()),
            "version": node.version,
            **node.reachability_status(),
        }
    )


def register(app: web.Application) -> None:
    """Add the status route."""
    app.router.add_get("/api/status", status)
