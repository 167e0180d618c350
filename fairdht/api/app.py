"""The local HTTP API: ``create_app`` composes the route modules into one aiohttp app.

Each route module exposes ``register(app)``; later features add a module to
``ROUTE_MODULES`` (as commands are added to ``COMMAND_MODULES`` in fairdht.cli.main).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from aiohttp import web

from fairdht.api import refusals
from fairdht.api.context import NODE
from fairdht.api.errors import error_middleware
from fairdht.api.events import (
    DEFAULT_MAX_STREAMS,
    DEFAULT_MAX_STREAMS_PER_CLIENT,
    MAX_STREAMS,
    MAX_STREAMS_PER_CLIENT,
)
from fairdht.api.hosts import HOST_POLICY, HostPolicy, host_middleware
from fairdht.node.runner import RunningNode

__all__ = ["MAX_BODY_BYTES", "ROUTE_MODULES", "create_app"]

# One line per route module; each defines register(app).
ROUTE_MODULES = [
    "fairdht.api.status",
    "fairdht.api.records",
    "fairdht.api.servers",
    "fairdht.api.history",
    "fairdht.api.checkpoints",
    "fairdht.api.karma",
    "fairdht.api.referees",
    "fairdht.api.events",
    "fairdht.api.writes",
    "fairdht.api.metrics",
    "fairdht.api.openapi",
    "fairdht.api.dashboard",
]

# Records are at most 1 KiB; a hex JSON body of one is ~2 KiB. Anything far larger
# is refused before it is read.
MAX_BODY_BYTES = 64 * 1024


def create_app(
    node: RunningNode,
    *,
    modules: Sequence[str] = ROUTE_MODULES,
    hosts: HostPolicy | None = None,
    max_streams: int = DEFAULT_MAX_STREAMS,
    max_streams_per_client: int = DEFAULT_MAX_STREAMS_PER_CLIENT,
) -> web.Application:
    """The API application for ``node`` with every route module registered.

    ``hosts`` says which Host headers it answers (default: an API on 127.0.0.1);
    ``max_streams`` caps the open ``/api/events`` streams, ``max_streams_per_client``
    those of one client.
    """
    # The Host check runs first, so a refused request reaches no route at all.
    app = web.Application(
        middlewares=[host_middleware, error_middleware], client_max_size=MAX_BODY_BYTES
    )
    app[NODE] = node
    app[HOST_POLICY] = hosts if hosts is not None else HostPolicy()
    app[MAX_STREAMS] = max_streams
    app[MAX_STREAMS_PER_CLIENT] = max_streams_per_client
    refusals.install(app)
    for name in modules:
        importlib.import_module(name).register(app)
    return app
