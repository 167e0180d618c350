"""``POST/GET/DELETE /api/publish``: announce a game server signed by this node's key (token).

For a game server that runs beside a full node and cannot sign records itself: the
node signs the announcement, puts it, and re-announces it every ``REANNOUNCE_EVERY``
seconds (DESIGN.md: no heartbeat, signed re-announcements before expiry) until a
DELETE withdraws it. POSTing the same address again updates it (e.g. the player
count) with a newer seq. A server that signs its own records uses ``POST /api/records``.
When the node stops, re-announcing stops and the announcement expires by itself.
"""

from __future__ import annotations

from aiohttp import web

from fairdht.api.auth import require_token
from fairdht.api.context import NODE
from fairdht.api.errors import ApiError
from fairdht.api.params import json_body, network_param
from fairdht.api.render import record_json
from fairdht.dht import KeepAlive
from fairdht.errors import BadBody
from fairdht.records.envelope import Record, check_network_name
from fairdht.serverlist.announce import (
    REANNOUNCE_EVERY,
    announcement_record,
    make_announcement,
    withdrawal_record,
)
from fairdht.trust import DEMO_NETWORK

__all__ = ["PUBLISHED", "delete_publish", "get_published", "post_publish", "register"]

# (network, address) -> (the newest signed record, its re-announcing loop)
PUBLISHED = web.AppKey("fairdht.published", dict[tuple[str, str], tuple[Record, KeepAlive]])
_FIELDS = {
    "network",
    "address",
    "name",
    "mode",
    "map",
    "players",
    "max_players",
    "game_version",
    "tags",
}
_STRINGS = ("address", "name", "mode", "map", "game_version")


def _network(value: object) -> str:
    if not isinstance(value, str):
        raise ApiError(400, "network must be a string")
    try:
        return check_network_name(value)
    except BadBody as exc:
        raise ApiError(400, f"network: {exc}") from None


def _whole(value: object, name: str) -> int:
    # JSON has one number type: 12 and 12.0 are the same integer (RFC 8259 §6; JSON
    # Schema 2020-12 counts both as "integer"), so both are accepted; true is not a number.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if type(value) is not int:
        raise ApiError(400, f"{name} must be a whole number")
    return value


async def post_publish(request: web.Request) -> web.Response:
    """Sign and put an announcement for ``address``; keep it alive until withdrawn."""
    require_token(request)
    node = request.app[NODE]
    doc = await json_body(request)
    unknown = set(doc) - _FIELDS
    if unknown:
        raise ApiError(400, f"unknown field(s): {', '.join(sorted(unknown))}")
    for name in _STRINGS:
        if name in doc and not isinstance(doc[name], str):
            raise ApiError(400, f"{name} must be a string")
    for name in ("players", "max_players"):
        if name in doc:
            doc[name] = _whole(doc[name], name)
    tags = doc.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ApiError(400, "tags must be a list of strings")
    if "address" not in doc or "name" not in doc:
        raise ApiError(400, "address and name are required")
    network = _network(doc.get("network", DEMO_NETWORK))
    body = make_announcement(  # UsageError (400) on any rule of the server kind
        address=doc["address"],
        name=doc["name"],
        mode=doc.get("mode", ""),
        map=doc.get("map", ""),
        players=doc.get("players", 0),
        max_players=doc.get("max_players", 0),
        game_version=doc.get("game_version", ""),
        tags=tags,
    )
    key = node.dht.key
    first = announcement_record(key, network, body, now=node.clock())
    published = request.app[PUBLISHED]
    slot = (network, body.address)
    held = published.pop(slot, None)
    if held is not None:
        held[1].cancel()
    records = iter([first])

    def make(now: float) -> Record:
        # The first put is the record checked above; later ones are re-signed (newer seq).
        record = next(records, None) or announcement_record(key, network, body, now=now)
        published[slot] = (record, alive)
        return record

    alive = node.dht.keep_alive(make, every=REANNOUNCE_EVERY)
    published[slot] = (first, alive)
    try:
        result = await alive.first()
    except BaseException:
        alive.cancel()
        published.pop(slot, None)
        raise
    return web.json_response(
        {
            "network": network,
            "address": body.address,
            "accepted": result.accepted,
            "asked": result.asked,
            "refusals": dict(result.refusals),
            "reannounce_every": REANNOUNCE_EVERY,
            "record": record_json(first),
        },
        status=201,
    )


async def get_published(request: web.Request) -> web.Response:
    """The announcements this node keeps alive (``{"servers": [record, ...]}``)."""
    published = request.app[PUBLISHED]
    rows = [
        {**record_json(record), "puts": alive.puts, "failures": alive.failures}
        for (_, _), (record, alive) in sorted(published.items())
    ]
    return web.json_response({"servers": rows})


async def delete_publish(request: web.Request) -> web.Response:
    """Stop re-announcing ``address`` and put a signed withdrawal for it."""
    require_token(request)
    node = request.app[NODE]
    network = network_param(request)  # empty or absent: the demo network, as on every read
    address = request.query.get("address", "")
    if not address:
        raise ApiError(400, "query parameter address is required")
    canonical = make_announcement(address=address, name="-").address  # 400 if malformed
    held = request.app[PUBLISHED].pop((network, canonical), None)
    if held is not None:
        held[1].cancel()
    tombstone = withdrawal_record(node.dht.key, network, canonical, now=node.clock())
    result = await node.dht.put(tombstone)
    return web.json_response(
        {
            "network": network,
            "address": canonical,
            "withdrawn": True,
            "was_published": held is not None,
            "accepted": result.accepted,
            "record": record_json(tombstone),
        }
    )


async def _stop_all(app: web.Application) -> None:
    for _, alive in app[PUBLISHED].values():
        alive.cancel()
    app[PUBLISHED].clear()


def register(app: web.Application) -> None:
    """Add the publishing routes."""
    app[PUBLISHED] = {}
    app.on_cleanup.append(_stop_all)
    app.router.add_post("/api/publish", post_publish)
    app.router.add_get("/api/publish", get_published)
    app.router.add_delete("/api/publish", delete_publish)
