"""Bearer-token check for the API's writing routes (RFC 6750 section 2.1)."""

from __future__ import annotations

import hmac

from aiohttp import web

from fairdht.api.context import NODE
from fairdht.api.errors import ApiError

__all__ = ["require_token"]

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="fairdht"'}


def require_token(request: web.Request) -> None:
    """Raise a 401 ApiError unless the request carries the node's API token."""
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise ApiError(
            401, "this route needs Authorization: Bearer <DATA_DIR/api-token>", headers=_CHALLENGE
        )
    expected = request.app[NODE].api_token
    # Constant-time comparison, so response timing does not reveal the token.
    if not hmac.compare_digest(presented.strip().encode(), expected.encode()):
        raise ApiError(401, "the API token is wrong", headers=_CHALLENGE)
