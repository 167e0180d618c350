"""``GET /api/history?network=`` (the commit log) and ``GET /api/history/{commit}`` (one diff).

Documents are those of ``fairdht history --json`` and ``fairdht history show --json``;
one commit also names the keys that made it: the maintainers who signed a checkpoint
or rollback, and the author keys of the announcements a sync commit changed.
"""

from __future__ import annotations

from aiohttp import web

from fairdht.api.checkpoints import applied_controls, open_history
from fairdht.api.errors import ApiError
from fairdht.api.params import int_param, network_param
from fairdht.errors import NotFoundError, UsageError

__all__ = ["get_commit", "get_history", "register"]


async def get_history(request: web.Request) -> web.Response:
    """Newest commits first, of one network (``network=``) or of all."""
    network = network_param(request, default=None) if request.query.get("network") else None
    limit = int_param(request, "limit", default=50, low=1, high=1000)
    commits = open_history(request).log(network, limit=limit)
    return web.json_response({"commits": [c.to_json() for c in commits], "network": network})


async def get_commit(request: web.Request) -> web.Response:
    """One commit (id or unique prefix of at least 4 hex digits): its entries and keys."""
    history = open_history(request)
    try:
        commit = history.show(request.match_info["commit"])
    except UsageError as exc:
        raise ApiError(400, str(exc)) from None
    except NotFoundError as exc:
        raise ApiError(404, str(exc)) from None
    doc = commit.to_json(with_entries=True)
    doc["authors"] = sorted({e.author.hex() for e in commit.entries})
    doc["control"] = None
    if commit.kind != "sync":
        for control in applied_controls(history, commit.network):
            if (control["kind"], control["version"]) == (commit.kind, commit.version):
                doc["control"] = control
    doc["signers"] = doc["control"]["signers"] if doc["control"] else []
    return web.json_response(doc)


def register(app: web.Application) -> None:
    """Add the history routes."""
    app.router.add_get("/api/history", get_history)
    app.router.add_get("/api/history/{commit}", get_commit)
