"""``GET /api/karma/{subject}`` (an explained score) and ``POST /api/karma/vote`` (token).

The score is the node's own view, as ``fairdht karma show --explain --json`` prints it;
a vote is signed with the node's key, as ``fairdht karma vote --json`` reports it.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from fairdht.api.auth import require_token
from fairdht.api.context import NODE
from fairdht.api.errors import ApiError
from fairdht.api.karmaview import install, read_view
from fairdht.api.params import flag, json_body, network_param, public_key_param
from fairdht.api.timing import timed_get
from fairdht.app.karma import score_document, vote
from fairdht.errors import BadBody
from fairdht.records.envelope import check_network_name
from fairdht.records.kinds.karma import MAX_EVIDENCE_BYTES, KarmaVote
from fairdht.trust import DEMO_NETWORK

__all__ = ["get_karma", "post_vote", "register"]


async def get_karma(request: web.Request) -> web.Response:
    """The subject's score and color in this node's view, explained unless ``explain=0``."""
    subject = public_key_param(request.match_info["subject"], "the subject")
    network = network_param(request)
    explain = flag(request, "explain", default=True)
    fetched = await read_view(request, network, [subject])
    reader = request.app[NODE].public_key.raw
    doc = score_document(fetched, subject, network=network, reader=reader, explain=explain)
    return web.json_response(doc)


def _text(document: dict[str, Any], name: str, default: str = "") -> str:
    value = document.get(name, default)
    if not isinstance(value, str):
        raise ApiError(400, f"{name} must be a string")
    return value


async def post_vote(request: web.Request) -> web.Response:
    """Sign a vote (or ``"withdraw": true``) with the node's key and put it and its index."""
    require_token(request)
    node = request.app[NODE]
    document = await json_body(request)
    unknown = set(document) - {"subject", "action", "context", "evidence", "withdraw", "network"}
    if unknown:
        raise ApiError(400, f"unknown field(s): {', '.join(sorted(unknown))}")
    subject = public_key_param(_text(document, "subject"), "subject")
    action = _text(document, "action")
    context = _text(document, "context")
    withdraw = document.get("withdraw", False)
    if not isinstance(withdraw, bool):
        raise ApiError(400, "withdraw must be true or false")
    try:
        evidence = bytes.fromhex(_text(document, "evidence"))
    except ValueError:
        raise ApiError(400, "evidence must be hex") from None
    if len(evidence) > MAX_EVIDENCE_BYTES:
        raise ApiError(400, f"evidence is at most {MAX_EVIDENCE_BYTES} bytes")
    try:
        network = check_network_name(_text(document, "network", DEMO_NETWORK))
        KarmaVote(action=action, context=context, evidence=evidence)
    except BadBody as exc:
        raise ApiError(400, str(exc)) from None
    if subject == node.public_key.raw:
        raise ApiError(400, "a key cannot vote on itself")

    now = node.clock()
    doc = await vote(
        node.dht.put,
        timed_get(request),
        node.dht.key,
        node.data_dir.root,
        network=network,
        subject=subject,
        action=action,
        context=context,
        evidence=evidence,
        withdraw=withdraw,
        now=now,
    )
    node.events.publish("karma.vote", doc, now=now)
    return web.json_response(doc, status=201)


def register(app: web.Application) -> None:
    """Add the karma routes."""
    install(app)
    # "vote" is POST /api/karma/vote, never a subject: without the lookahead GET on it
    # would be a bad-subject 400 and its 405 would advertise GET in Allow.
    app.router.add_get("/api/karma/{subject:(?!vote$)[^/]+}", get_karma)
    app.router.add_post("/api/karma/vote", post_vote)
