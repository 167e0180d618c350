"""Every API error is JSON ``{"error": "..."}`` with a status code that says whose fault it is."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from fairdht.errors import (
    FairDHTError,
    KeyFileError,
    NetworkError,
    NoPeersError,
    NotAcceptedError,
    RecordError,
    UsageError,
)

__all__ = ["ApiError", "error_middleware", "json_error", "status_of"]

log = logging.getLogger("fairdht.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """Raised by a route to answer with ``status`` and one sentence."""

    def __init__(self, status: int, message: str, *, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def json_error(status: int, message: str, **extra: object) -> web.Response:
    """A JSON error response."""
    return web.json_response({"error": message, **extra}, status=status)


def status_of(exc: FairDHTError) -> int:
    """The HTTP status of one of fairdht's errors."""
    match exc:
        case RecordError() | UsageError():
            return 400  # the client sent something invalid
        case NotAcceptedError():
            return 409  # peers answered and refused (e.g. an older seq than they hold)
        case NoPeersError():
            return 503  # the node has nobody to ask right now
        case NetworkError():
            return 502
        case KeyFileError():
            return 500
        case _:
            return 500


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into a JSON error; unexpected ones are logged, never leaked."""
    try:
        return await handler(request)
    except ApiError as exc:
        response = json_error(exc.status, exc.message)
        response.headers.update(exc.headers)
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = json_error(exc.status, exc.reason)
        for name in ("Allow", "WWW-Authenticate"):
            if name in exc.headers:
                response.headers[name] = exc.headers[name]
        return response
    except FairDHTError as exc:
        return json_error(status_of(exc), str(exc), code=exc.code)
    except Exception:
        log.exception("API route %s %s failed", request.method, request.path)
        return json_error(500, "internal error; see the node's log")
