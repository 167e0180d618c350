"""The local HTTP API: ``create_app`` composes the route modules into one aiohttp app.

Each route module exposes ``register(app)``; later features add a module to
``ROUTE_MODULES`` (as commands are added to ``COMMAND_MODULES`` in fairdht.cli.main).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from aiohttp import web

from fairdht.api.context import NODE
from fairdht.api.errors import error_middleware
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


def create_app(node: RunningNode, *, modules: Sequence[str] = ROUTE_MODULES) -> web.Application:
    """The API application for ``node`` with every route module registered."""
    app = web.Application(middlewares=[error_middleware], client_max_size=MAX_BODY_BYTES)
    app[NODE] = node
    for name in modules:
        importlib.import_module(name).register(app)
    return app
