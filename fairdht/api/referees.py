"""``GET /api/referees/{code_hash}?players=&match=&count=``: eligible referees in rank order.

The document is the one of ``fairdht referees --json`` (``explain=1`` adds every
candidate with its status and reason, like ``--explain``). Karma is the node's own view.
Unlike the command, no eligible referee is still a 200 with an empty ``referees`` list.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from fairdht.api.context import NODE
from fairdht.api.errors import ApiError
from fairdht.api.karmaview import install, read_view
from fairdht.api.params import flag, hex_bytes, int_param, network_param
from fairdht.api.timing import timed_get
from fairdht.errors import BadBody
from fairdht.karma.score import karma_of
from fairdht.records.kinds.match import match_key
from fairdht.records.kinds.referee import MAX_CLUSTER, check_game_id, offer_key
from fairdht.referee.commit_reveal import Round, tally
from fairdht.referee.offers import offer_views
from fairdht.referee.selection import Candidate, select_referees
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
    players_arg = _players(request)
    match = _match(request)
    count = int_param(request, "count", default=1, low=1, high=64)
    explain = flag(request, "explain")
    node = request.app[NODE]
    now = node.clock()
    rnd: Round | None = None
    get = timed_get(request)
    if match is not None:
        offers, match_records = await asyncio.gather(
            get(offer_key(network, code_hash)), get(match_key(network, match))
        )
        rnd = tally(match_records, match_id=match, players=players_arg, now=now)
    else:
        offers = await get(offer_key(network, code_hash))
    players = list(players_arg or (rnd.players if rnd else []))
    views = list(offer_views(offers))
    trust_path = node.data_dir.root / "trust.sqlite"
    distrusted = TrustStore(trust_path).distrusted(network) if trust_path.exists() else frozenset()
    referees = sorted({v.referee for v in views})
    scores: dict[bytes, float] | None = None
    if referees:
        view = (await read_view(request, network, referees)).view
        scores = {r: karma_of(view, r)[0] for r in referees}
    sel = select_referees(
        views,
        code_hash=code_hash,
        players=players,
        now=now,
        match_id=match or "",
        nonces=rnd.nonces if rnd else (),
        count=count,
        distrusted=distrusted,
        karma=None if scores is None else scores.__getitem__,
    )
    doc: dict[str, Any] = {
        "code_hash": code_hash.hex(),
        "network": network,
        "match": match,
        "players": [p.hex() for p in players],
        "seed": sel.seed.hex(),
        "nonces": 0 if rnd is None else len(rnd.nonces),
        "reveal_deadline": None if rnd is None else rnd.deadline,
        "missing_commits": [] if rnd is None else [p.hex() for p in rnd.missing_commits],
        "pending_reveals": [] if rnd is None else [p.hex() for p in rnd.pending_reveals],
        "missing_reveals": [] if rnd is None else [p.hex() for p in rnd.missing_reveals],
        "referees": [candidate_json(c) for c in sel.referees],
    }
    if explain:
        doc["candidates"] = [
            {**candidate_json(c), "status": c.status.value, "reason": c.reason}
            for c in sel.candidates
        ]
    return web.json_response(doc)


def register(app: web.Application) -> None:
    """Add the referees route."""
    install(app)
    app.router.add_get("/api/referees/{code_hash}", get_referees)
