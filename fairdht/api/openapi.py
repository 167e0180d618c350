"""``GET /api/openapi.json``: the OpenAPI 3.1 description of every route of the API.

Built from the schemas below, which the API tests check real responses against, so
the document cannot drift from what the node sends (docs/api.md has the prose).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from fairdht import __version__
from fairdht.node.events import EVENT_TYPES

__all__ = ["SCHEMAS", "openapi_document", "register"]

Schema = dict[str, Any]

HEX = {"type": "string", "pattern": "^[0-9a-f]*$"}
INT = {"type": "integer"}
STR = {"type": "string"}
BOOL = {"type": "boolean"}
NUM = {"type": "number"}


def _nullable(schema: Schema) -> Schema:
    return {**schema, "type": [schema["type"], "null"]}


def _obj(required: dict[str, Schema], optional: dict[str, Schema] | None = None) -> Schema:
    return {
        "type": "object",
        "required": sorted(required),
        "properties": {**required, **(optional or {})},
    }


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _list(item: Schema) -> Schema:
    return {"type": "array", "items": item}


KARMA_BRIEF = _obj({"score": NUM, "color": {"type": "string", "enum": ["red", "neutral", "green"]}})

SCHEMAS: dict[str, Schema] = {
    "Error": _obj({"error": STR}, {"code": STR}),
    "Status": _obj(
        {
            "node_id": HEX,
            "public_key": HEX,
            "listen": STR,
            "peers": INT,
            "records": INT,
            "uptime_s": INT,
            "version": STR,
            # docs/nat.md: the reachability verdict, why, and the address peers see.
            "reachable": {
                "type": "string",
                "enum": ["public", "punchable", "relayed-only", "unknown"],
            },
            "reachable_reason": STR,
            "observed": _nullable(STR),
            "reachability_checked_at": _nullable(INT),
            "rendezvous": _list(STR),
        }
    ),
    "Record": _obj(
        {
            "raw": HEX,
            "key": HEX,
            "kind": STR,
            "network": STR,
            "subkey": HEX,
            "author": HEX,
            "seq": INT,
            "issued_at": INT,
            "expires_at": INT,
            "withdrawn": BOOL,
            "body": {"type": ["object", "null"]},
            "sig": HEX,
        }
    ),
    "Records": _obj({"key": HEX, "local": BOOL, "records": _list(_ref("Record"))}),
    "PutResult": _obj(
        {
            "key": HEX,
            "accepted": INT,
            "asked": INT,
            "refusals": {"type": "object", "additionalProperties": INT},
            "record": _ref("Record"),
        }
    ),
    "Server": _obj(
        {
            "address": STR,
            "name": STR,
            "network": STR,
            "mode": STR,
            "map": STR,
            "players": INT,
            "max_players": INT,
            "game_version": STR,
            "tags": _list(STR),
            "author": HEX,
            "seq": INT,
            "issued_at": INT,
            "expires_at": INT,
            "verified": BOOL,
            "leaf": HEX,
            # docs/serverlist.md §1.11: true proven by a probe, false probed and not
            # proven, null unknown (not probed yet, out of the node's scope, or stale).
            "reachable": _nullable(BOOL),
        },
        {"karma": KARMA_BRIEF},
    ),
    "ServerList": _obj(
        {
            "servers": _list(_ref("Server")),
            "network": STR,
            "state_root": HEX,
            "checkpoint_version": INT,
            "closed": BOOL,
            "quarantined": INT,
            "capped": INT,
            "synced_at": _nullable(INT),
        }
    ),
    "AuthorServers": _obj(
        {
            "author": HEX,
            "network": STR,
            "servers": _list(_ref("Server")),
            "held_back": _obj(
                {
                    "quarantined": _list(_ref("Server")),
                    "capped": _list(_ref("Server")),
                    "distrusted": _list(_ref("Server")),
                }
            ),
            "synced_at": _nullable(INT),
        },
        {"karma": KARMA_BRIEF},
    ),
    "CommitEntry": _obj(
        {
            "op": {"type": "string", "enum": ["added", "updated", "removed", "quarantined"]},
            "leaf": HEX,
            "author": HEX,
            "subkey": HEX,
            "address": STR,
            "name": STR,
            "seq": INT,
        }
    ),
    "Commit": _obj(
        {
            "id": HEX,
            "network": STR,
            "n": INT,
            "parent": _nullable(HEX),
            "time": INT,
            "kind": {"type": "string", "enum": ["sync", "checkpoint", "rollback"]},
            "root": HEX,
            "version": INT,
            "note": STR,
            "counts": _obj({"added": INT, "updated": INT, "removed": INT, "quarantined": INT}),
        }
    ),
    "History": _obj({"commits": _list(_ref("Commit")), "network": _nullable(STR)}),
    "Control": _obj(
        {
            "kind": {"type": "string", "enum": ["checkpoint", "rollback"]},
            "version": INT,
            "root": HEX,
            "members": HEX,
            "count": INT,
            "expires": INT,
            "target_version": _nullable(INT),
            "reason": STR,
            "signers": _list(HEX),
            "commit": _nullable(HEX),
        }
    ),
    "CommitDetail": {
        "allOf": [
            _ref("Commit"),
            _obj(
                {
                    "entries": _list(_ref("CommitEntry")),
                    "authors": _list(HEX),
                    "signers": _list(HEX),
                    "control": {"oneOf": [_ref("Control"), {"type": "null"}]},
                }
            ),
        ]
    },
    "Checkpoints": _obj(
        {
            "network": STR,
            "policy": _obj(
                {
                    "version": INT,
                    "root": _nullable(HEX),
                    "members": INT,
                    "closed": BOOL,
                    "closed_until": INT,
                }
            ),
            "checkpoints": _list(_ref("Control")),
        }
    ),
    "ExplainedVote": _obj(
        {
            "voter": HEX,
            "action": STR,
            "context": STR,
            "issued_at": INT,
            "weight": NUM,
            "contribution": NUM,
            "status": STR,
        }
    ),
    "Karma": _obj(
        {
            "subject": HEX,
            "score": NUM,
            "color": {"type": "string", "enum": ["red", "neutral", "green"]},
            "votes_counted": INT,
            "network": STR,
            "reader": HEX,
            "records_fetched": INT,
            "dropped": {"type": "object", "additionalProperties": INT},
        },
        {"votes": _list(_ref("ExplainedVote"))},
    ),
    "VoteRequest": _obj(
        {"subject": HEX, "action": STR},
        {"context": STR, "evidence": HEX, "withdraw": BOOL, "network": STR},
    ),
    "VoteResult": _obj(
        {
            "subject": HEX,
            "action": STR,
            "context": STR,
            "withdrawn": BOOL,
            "network": STR,
            "voter": HEX,
            "issued_at": INT,
            "expires_at": INT,
            "accepted": _nullable(INT),
            "index_subjects": INT,
        }
    ),
    "Referee": _obj(
        {
            "referee": HEX,
            "endpoint": STR,
            "game": STR,
            "rank": _nullable(INT),
            "karma": _nullable(NUM),
            "capacity": INT,
            "load": INT,
            "expires_at": INT,
        },
        {"status": STR, "reason": STR},
    ),
    "Referees": _obj(
        {
            "code_hash": HEX,
            "network": STR,
            "match": _nullable(STR),
            "players": _list(HEX),
            "seed": HEX,
            "nonces": INT,
            "reveal_deadline": _nullable(INT),
            "missing_commits": _list(HEX),
            "pending_reveals": _list(HEX),
            "missing_reveals": _list(HEX),
            "referees": _list(_ref("Referee")),
        },
        {"candidates": _list(_ref("Referee"))},
    ),
    "PublishRequest": _obj(
        {"address": STR, "name": STR},
        {
            "network": STR,
            "mode": STR,
            "map": STR,
            "players": INT,
            "max_players": INT,
            "game_version": STR,
            "tags": _list(STR),
        },
    ),
    "PublishResult": _obj(
        {
            "network": STR,
            "address": STR,
            "accepted": INT,
            "asked": INT,
            "refusals": {"type": "object", "additionalProperties": INT},
            "reannounce_every": NUM,
            "record": _ref("Record"),
        }
    ),
    "Published": _obj(
        {"servers": _list({"allOf": [_ref("Record"), _obj({"puts": INT, "failures": INT})]})}
    ),
    "WithdrawResult": _obj(
        {
            "network": STR,
            "address": STR,
            "withdrawn": BOOL,
            "was_published": BOOL,
            "accepted": INT,
            "record": _ref("Record"),
        }
    ),
    "Event": _obj(
        {
            "id": INT,
            "type": {
                "type": "string",
                "enum": list(EVENT_TYPES),
            },
            "time": INT,
            "data": {"type": "object"},
        }
    ),
}

_NETWORK = {
    "name": "network",
    "in": "query",
    "required": False,
    "schema": STR,
    "description": "network name (default demo)",
}


def _query(name: str, schema: Schema, description: str) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def _path(name: str, description: str) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": HEX, "description": description}


def _json(schema: str, description: str = "OK") -> Schema:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


_ERRORS = {
    "400": _json("Error", "bad input (nothing was sent to the DHT)"),
    "502": _json("Error", "the network failed"),
    "503": _json("Error", "no peer answered"),
}
_AUTH_ERRORS = {**_ERRORS, "401": _json("Error", "missing or wrong bearer token")}
_SECURED: list[dict[str, list[str]]] = [{"token": []}]


def _op(summary: str, ok: Schema, *, params: list[Schema] | None = None, **extra: Any) -> Schema:
    op: Schema = {"summary": summary, "responses": {"200": ok, **_ERRORS}}
    if params:
        op["parameters"] = params
    op.update(extra)
    return op


def _write(summary: str, status: str, ok: Schema, body: str | None, **extra: Any) -> Schema:
    op: Schema = {
        "summary": summary,
        "security": _SECURED,
        "responses": {status: ok, **_AUTH_ERRORS},
    }
    if body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(body)}},
        }
    op.update(extra)
    return op


PATHS: dict[str, dict[str, Schema]] = {
    "/api/status": {"get": _op("Who the node is and what it holds", _json("Status"))},
    "/api/records/{key}": {
        "get": _op(
            "Records under a DHT key (merged from replicas, or local=1)",
            _json("Records"),
            params=[
                _path("key", "DHT key, 40 hex digits"),
                _query("local", STR, "1: this node's store only"),
                _query("withdrawn", STR, "1: include withdrawals"),
            ],
        )
    },
    "/api/records": {
        "post": {
            **_write(
                'Put a signed record (raw bytes, or {"record": hex})',
                "201",
                _json("PutResult"),
                None,
            ),
            "requestBody": {
                "required": True,
                "content": {
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                    "application/json": {"schema": _obj({"record": HEX})},
                },
            },
        }
    },
    "/api/servers": {
        "get": _op(
            "A network's server list (as fairdht servers --json)",
            _json("ServerList"),
            params=[_NETWORK, _query("karma", STR, "1: add each author's karma")],
        )
    },
    "/api/servers/{author}": {
        "get": _op(
            "One author key's servers, listed and held back",
            _json("AuthorServers"),
            params=[
                _path("author", "public key, 64 hex digits"),
                _NETWORK,
                _query("karma", STR, "1: add the author's karma"),
            ],
            responses={
                "200": _json("AuthorServers"),
                "404": _json("Error", "no server"),
                **_ERRORS,
            },
        )
    },
    "/api/history": {
        "get": _op(
            "The commit log, newest first (as fairdht history --json)",
            _json("History"),
            params=[
                _query("network", STR, "only this network (default: all)"),
                _query("limit", INT, "commits, 1-1000 (default 50)"),
            ],
        )
    },
    "/api/history/{commit}": {
        "get": _op(
            "One commit: its diff and the keys that made it",
            _json("CommitDetail"),
            params=[_path("commit", "commit id or a unique prefix (4+ hex digits)")],
            responses={
                "200": _json("CommitDetail"),
                "404": _json("Error", "no such commit"),
                **_ERRORS,
            },
        )
    },
    "/api/checkpoints": {
        "get": _op(
            "Applied checkpoints and rollbacks, and the policy",
            _json("Checkpoints"),
            params=[_NETWORK],
        )
    },
    "/api/karma/{subject}": {
        "get": _op(
            "A key's karma in this node's view, with the votes that made it",
            _json("Karma"),
            params=[
                _path("subject", "public key"),
                _NETWORK,
                _query("explain", STR, "0: no votes list"),
            ],
        )
    },
    "/api/karma/vote": {
        "post": _write(
            "Sign and publish a karma vote with the node's key",
            "201",
            _json("VoteResult"),
            "VoteRequest",
        )
    },
    "/api/referees/{code_hash}": {
        "get": _op(
            "Eligible referees in rank order (as fairdht referees --json)",
            _json("Referees"),
            params=[
                _path("code_hash", "64 hex digits"),
                _NETWORK,
                _query("players", STR, "comma-separated player keys"),
                _query("match", STR, "match id: use its revealed nonces"),
                _query("count", INT, "referees wanted, 1-64"),
                _query("explain", STR, "1: every candidate with status and reason"),
            ],
        )
    },
    "/api/publish": {
        "post": _write(
            "Announce a game server signed by the node; kept alive",
            "201",
            _json("PublishResult"),
            "PublishRequest",
        ),
        "get": _op("Announcements this node keeps alive", _json("Published")),
        "delete": _write(
            "Stop re-announcing and withdraw a server",
            "200",
            _json("WithdrawResult"),
            None,
            parameters=[_NETWORK, _query("address", STR, "the server's IP:PORT")],
        ),
    },
    "/api/events": {
        "get": {
            "summary": "Server-sent events: server.*, commit, checkpoint, rollback, karma.*",
            "parameters": [
                _query("network", STR, "only this network's events"),
                _query("after", INT, "replay kept events after this id (or Last-Event-ID)"),
            ],
            "responses": {
                "200": {
                    "description": "an endless text/event-stream; each data line is an Event",
                    "content": {"text/event-stream": {"schema": _ref("Event")}},
                },
                "400": _json("Error", "bad input"),
            },
        }
    },
    "/api/openapi.json": {
        "get": {
            "summary": "This document",
            "responses": {
                "200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}
            },
        }
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus text format: peers, records, RPCs, drops, latency",
            "responses": {"200": {"description": "text", "content": {"text/plain": {}}}},
        }
    },
    "/": {
        "get": {
            "summary": "The dashboard (HTML)",
            "responses": {"200": {"description": "page", "content": {"text/html": {}}}},
        }
    },
}


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the API."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "fairdht node API",
            "version": __version__,
            "description": "Local HTTP API of a fairdht full node (docs/api.md). Writes need "
            'the bearer token in DATA_DIR/api-token. Errors are {"error": message}.',
        },
        "servers": [{"url": "http://127.0.0.1:8470"}],
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
        },
    }


async def get_openapi(request: web.Request) -> web.Response:
    """Serve the OpenAPI document."""
    return web.json_response(openapi_document())


def register(app: web.Application) -> None:
    """Add the OpenAPI route."""
    app.router.add_get("/api/openapi.json", get_openapi)
