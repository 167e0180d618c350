"""``GET /api/referees/{code_hash}?players=&match=&count=``: eligible referees in rank order.

The document is the one of ``fairdht referees --json`` (``explain=1`` adds every
candidate with its status and reason, like ``--explain``). Karma is the node's own view.
Unlike the command, no eligible referee is still a 200, with an empty ``referees`` list
and the command's sentence under ``error``. The flow is fairdht.app.referees, shared with
the command.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from fairdht.api.context import NODE
from fairdht.api.errors import ApiError
from fairdht.api.karmaview import install, read_view
from fairdht.api.params import flag, hex_bytes, int_param, network_param
from fairdht.api.timing import timed_get
from fairdht.app.referees import find_referees, referees_document
from fairdht.errors import BadBody
from fairdht.karma.score import karma_of as karma_of_view
from fairdht.records.kinds.referee import MAX_CLUSTER, check_game_id
from fairdht.referee.selection import Candidate
from fairdht.trust import TrustStore

__all__ = ["candidate_json", "get_referees", "register"]


def candidate_json(c: Candidate) -> dict[str, Any]:
    """One referee as ``fairdht referees --json`` lists it."""
    return c.to_json()


def _players(request: web.Request) -> list[bytes] | None:
    text = request.query.get("players")
    if text is None:
        return None
    items = [t for t in text.replace(" ", "").split(",") if t]
    keys = sorted({hex_bytes(t, 32, "each player") for t in items})
    if len(keys) > MAX_CLUSTER:
        raise ApiError(400, f"at most {MAX_CLUSTER} players, got {len(keys)}")
    return keys


def _match(request: web.Request) -> str | None:
    text = request.query.get("match")
    if text is None:
        return None
    try:
        return check_game_id(text, what="match id")
    except BadBody as exc:
        raise ApiError(400, str(exc)) from None


async def get_referees(request: web.Request) -> web.Response:
    """Eligible referees for a match of ``players`` running ``code_hash``."""
    code_hash = hex_bytes(request.match_info["code_hash"], 32, "the code hash")
    network = network_param(request)
    players = _players(request)
    match = _match(request)
    count = int_param(request, "count", default=1, low=1, high=64)
    explain = flag(request, "explain")
    node = request.app[NODE]
    trust_path = node.data_dir.root / "trust.sqlite"
    distrusted = TrustStore(trust_path).distrusted(network) if trust_path.exists() else frozenset()

    async def karma_of(referees: list[bytes]) -> dict[bytes, float] | None:
        if not referees:
            return None
        view = (await read_view(request, network, referees)).view
        return {r: karma_of_view(view, r)[0] for r in referees}

    search = await find_referees(
        timed_get(request, include_withdrawn=True),
        network=network,
        code_hash=code_hash,
        players=players,
        match_id=match,
        now=node.clock(),
        count=count,
        explain=explain,
        distrusted=distrusted,
        karma_of=karma_of,
    )
    return web.json_response(referees_document(search, explain=explain))


def register(app: web.Application) -> None:
    """Add the referees route."""
    install(app)
    app.router.add_get("/api/referees/{code_hash}", get_referees)
