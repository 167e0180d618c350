"""The history routes: the log, one commit, a diff, blame, the graph and a prepared command.

``GET /api/history?network=``, ``/api/history/{commit}``, ``/api/history/diff?network=&from=&to=``,
``/api/history/blame?network=``, ``/api/history/graph?network=`` and
``/api/history/prepare?network=&action=&target=``: each parses, calls
``fairdht.app.history`` and renders its document (the same as ``fairdht history ... --json``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from fairdht.api.checkpoints import applied_controls, open_history
from fairdht.api.errors import ApiError
from fairdht.api.params import int_param, network_param
from fairdht.app.history import (
    history_blame,
    history_diff,
    history_graph,
    history_log,
    history_show,
    prepare_control,
)
from fairdht.errors import NotFoundError

__all__ = [
    "get_blame",
    "get_commit",
    "get_diff",
    "get_graph",
    "get_history",
    "get_prepare",
    "register",
]


T = TypeVar("T")


def _found(call: Callable[..., T], *args: Any, **kw: Any) -> T:
    """Call a flow; a commit, version or network it cannot find is a 404, not a 502."""
    try:
        return call(*args, **kw)
    except NotFoundError as exc:
        raise ApiError(404, str(exc)) from None


def _point(request: web.Request, name: str) -> str:
    text = request.query.get(name, "").strip()
    if not text:
        raise ApiError(400, f"query parameter {name} is required (a commit id or vN)")
    return text


async def get_history(request: web.Request) -> web.Response:
    """Newest commits first, of one network (``network=``) or of all."""
    network = network_param(request, default=None) if request.query.get("network") else None
    limit = int_param(request, "limit", default=50, low=1, high=1000)
    return web.json_response(history_log(open_history(request), network, limit=limit))


async def get_commit(request: web.Request) -> web.Response:
    """One commit (id or unique prefix, or ``vN`` with ``network=``): entries and keys."""
    point = request.match_info["commit"]
    versioned = point.lower().startswith("v")
    # A version needs a network (the default one when none is given); an id does not.
    network = network_param(request) if versioned or request.query.get("network") else None
    history = open_history(request)
    doc = _found(history_show, history, point, network)
    doc["control"] = None
    if doc["kind"] != "sync":
        for control in applied_controls(history, doc["network"]):
            if (control["kind"], control["version"]) == (doc["kind"], doc["version"]):
                doc["control"] = control
    return web.json_response(doc)


async def get_diff(request: web.Request) -> web.Response:
    """Added, removed, changed and quarantined servers between ``from`` and ``to``."""
    network = network_param(request)
    doc = _found(
        history_diff, open_history(request), network, _point(request, "from"), _point(request, "to")
    )
    return web.json_response(doc)


async def get_blame(request: web.Request) -> web.Response:
    """Per author key over the whole history."""
    doc = _found(history_blame, open_history(request), network_param(request))
    return web.json_response(doc)


async def get_graph(request: web.Request) -> web.Response:
    """The spine, local commits and edges the dashboard draws."""
    limit = int_param(request, "limit", default=200, low=1, high=2000)
    doc = history_graph(open_history(request), network_param(request), limit=limit)
    return web.json_response(doc)


async def get_prepare(request: web.Request) -> web.Response:
    """The exact CLI command for a checkpoint or a rollback; nothing is signed here."""
    action = request.query.get("action", "")
    if action not in ("checkpoint", "rollback"):
        raise ApiError(400, "action must be checkpoint or rollback")
    target = request.query.get("target") or None
    doc = _found(
        prepare_control,
        open_history(request),
        network_param(request),
        "checkpoint" if action == "checkpoint" else "rollback",
        target=target,
    )
    return web.json_response(doc)


def register(app: web.Application) -> None:
    """Add the history routes (the fixed paths before ``{commit}``)."""
    app.router.add_get("/api/history", get_history)
    app.router.add_get("/api/history/diff", get_diff)
    app.router.add_get("/api/history/blame", get_blame)
    app.router.add_get("/api/history/graph", get_graph)
    app.router.add_get("/api/history/prepare", get_prepare)
    app.router.add_get("/api/history/{commit}", get_commit)
