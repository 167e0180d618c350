"""``GET /api/openapi.json``: the OpenAPI 3.1 description of every route of the API.

Built from the schemas below, which the API tests check real responses against, so
the document cannot drift from what the node sends (docs/api.md has the prose).
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from fairdht import __version__
from fairdht.node.events import EVENT_TYPES
from fairdht.records import KEY_BYTES
from fairdht.records.kinds.karma import ACTIONS, MAX_CONTEXT_CHARS, MAX_EVIDENCE_BYTES
from fairdht.records.kinds.referee import MAX_CLUSTER, MAX_GAME_ID
from fairdht.records.kinds.server import MAX_PLAYERS, MAX_TAGS

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


# What the routes accept, written so a schema-valid request is never refused for its
# form (schemathesis checks both ways: tests/api/test_api_fuzz_schemathesis.py).
NETWORK = {"type": "string", "pattern": "^[a-z0-9][a-z0-9._-]{0,31}$"}
# In a query an empty network means the default (or, for history and events, all).
NETWORK_OR_EMPTY = {"type": "string", "pattern": "^([a-z0-9][a-z0-9._-]{0,31})?$"}
FLAG = {"type": "string", "enum": ["", "0", "1", "false", "true", "no", "yes"]}


def _hex(size: int) -> Schema:
    return {"type": "string", "pattern": f"^[0-9a-fA-F]{{{size * 2}}}$"}


KEY_HEX = _hex(32)
_OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_PORT = "([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
_H16 = "[0-9a-fA-F]{1,4}"
# A game server's address is one host (fairdht.records.kinds.server): IPv4 first octet
# 1-223 (not 0/8, multicast, class E or broadcast); IPv6 written out in full, not
# starting 0 or f (so neither :: nor multicast; the server also takes ::1 and fc00::/7).
# Shortened IPv6 forms are accepted too, but a pattern admitting them admits invalid ones.
_UNICAST_OCTET = "(22[0-3]|2[01][0-9]|1[0-9]{2}|[1-9][0-9]?)"
SERVER_ENDPOINT = {
    "type": "string",
    "pattern": (
        f"^({_UNICAST_OCTET}(\\.{_OCTET}){{3}}|\\[[1-9a-eA-E][0-9a-fA-F]{{0,3}}(:{_H16}){{7}}\\])"
        f":{_PORT}$"
    ),
    "description": "a game server's IP:PORT or [IPv6]:PORT: one unicast host, an IP literal",
}
# Record text fields (fairdht.records.schema.get_str): no control characters.
_NO_CONTROL = "^[^\\x00-\\x1f\\x7f]*$"


def _text(low: int, high: int) -> Schema:
    return {"type": "string", "minLength": low, "maxLength": high, "pattern": _NO_CONTROL}


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
            "op": {
                "type": "string",
                "enum": ["added", "changed", "removed", "quarantined", "withdrawn"],
            },
            "author": HEX,
            "subkey": HEX,
            "leaf": HEX,
            "status": STR,
            "address": STR,
            "name": STR,
            "game_version": STR,
            "seq": INT,
            "at": INT,
        }
    ),
    "Commit": _obj(
        {
            "id": HEX,
            "network": STR,
            "n": INT,
            "parent": _nullable(HEX),
            "prev": _nullable(HEX),
            "time": INT,
            "kind": {"type": "string", "enum": ["sync", "checkpoint", "rollback"]},
            "local": BOOL,
            "observed": BOOL,
            "root": HEX,
            "version": INT,
            "note": STR,
            "members": _nullable(HEX),
            "count": INT,
            "folded": INT,
            "counts": _obj(
                {"added": INT, "changed": INT, "removed": INT, "quarantined": INT, "withdrawn": INT}
            ),
        }
    ),
    "History": _obj({"commits": _list(_ref("Commit")), "network": _nullable(STR)}),
    "DiffEntry": _obj(
        {
            "op": {"type": "string", "enum": ["added", "changed", "removed", "quarantined"]},
            "author": HEX,
            "subkey": HEX,
            "leaf": _nullable(HEX),
            "address": STR,
            "name": STR,
            "game_version": STR,
            "seq": INT,
            "at": INT,
        },
        {"before": _obj({"address": STR, "name": STR, "game_version": STR, "status": STR})},
    ),
    "CommitBrief": _obj(
        {"id": HEX, "n": INT, "kind": STR, "local": BOOL, "version": INT, "time": INT, "root": HEX},
        {"signers": _list(HEX), "note": STR, "count": INT},
    ),
    "HistoryDiff": _obj(
        {
            "network": STR,
            "from": _ref("CommitBrief"),
            "to": _ref("CommitBrief"),
            "counts": _obj({"added": INT, "removed": INT, "changed": INT, "quarantined": INT}),
            "changes": _list(_ref("DiffEntry")),
            "authors": {"type": "object", "additionalProperties": {"type": "object"}},
            "controls": _list(_ref("CommitBrief")),
        }
    ),
    "Blame": _obj(
        {
            "network": STR,
            "authors": _list(
                _obj(
                    {
                        "author": HEX,
                        "added": INT,
                        "listed": INT,
                        "quarantined_now": INT,
                        "quarantined_ever": INT,
                        "removed": INT,
                        "changed": INT,
                        "withdrawn": INT,
                    }
                )
            ),
        }
    ),
    "HistoryGraph": _obj(
        {
            "network": STR,
            "nodes": _list({"type": "object"}),
            "edges": _list(
                _obj(
                    {
                        "from": HEX,
                        "to": HEX,
                        "kind": {"type": "string", "enum": ["spine", "local", "revert"]},
                    }
                )
            ),
            "size": _obj({"local_commits": INT, "spine_commits": INT, "entries": INT}),
        }
    ),
    "PreparedCommand": _obj(
        {
            "action": {"type": "string", "enum": ["checkpoint", "rollback"]},
            "network": STR,
            "command": STR,
            "listed": INT,
            "quarantined": INT,
            "note": STR,
        },
        {"head": _nullable(HEX), "target": _ref("CommitBrief")},
    ),
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
                    "spine_diff": {"oneOf": [_list(_ref("DiffEntry")), {"type": "null"}]},
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
            # attributed: signed by the voter's key; anonymous: a one-time key with a
            # referee's blind token (docs/karma.md), which names the backing referee.
            "kind": {"type": "string", "enum": ["attributed", "anonymous"]},
        },
        {"referee": HEX},
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
    "VoteRequest": {
        **_obj(
            {"subject": KEY_HEX, "action": {"type": "string", "enum": list(ACTIONS)}},
            {
                "context": {
                    "type": "string",
                    "pattern": f"^[\\x20-\\x7e]{{0,{MAX_CONTEXT_CHARS}}}$",
                },
                "evidence": {
                    "type": "string",
                    "pattern": f"^([0-9a-fA-F]{{2}}){{0,{MAX_EVIDENCE_BYTES}}}$",
                },
                "withdraw": BOOL,
                "network": NETWORK,
            },
        ),
        "additionalProperties": False,
        "description": "subject must not be the node's own key (a key cannot vote on itself)",
    },
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
    "PublishRequest": {
        **_obj(
            {"address": SERVER_ENDPOINT, "name": _text(1, 64)},
            {
                "network": NETWORK,
                "mode": _text(0, 32),
                "map": _text(0, 32),
                "players": {"type": "integer", "minimum": 0, "maximum": MAX_PLAYERS},
                "max_players": {"type": "integer", "minimum": 0, "maximum": MAX_PLAYERS},
                "game_version": _text(0, 32),
                "tags": {
                    "type": "array",
                    "maxItems": MAX_TAGS,
                    "items": {"type": "string", "minLength": 1, "maxLength": 16},
                },
            },
        ),
        "additionalProperties": False,
        "description": "players must not exceed max_players unless max_players is 0 (unknown)",
    },
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
    # One message of the text/event-stream, as the WHATWG parser splits it: each event's
    # data line is an Event; a client that fell behind gets one overflow message.
    "EventMessage": {
        "oneOf": [
            _obj(
                {
                    "id": {"type": "string", "pattern": "^[0-9]+$"},
                    "event": {"type": "string", "enum": list(EVENT_TYPES)},
                    "data": {
                        "type": "string",
                        "contentMediaType": "application/json",
                        "contentSchema": _ref("Event"),
                    },
                },
                {"retry": INT},
            ),
            _obj(
                {
                    "event": {"type": "string", "const": "overflow"},
                    "data": {
                        "type": "string",
                        "contentMediaType": "application/json",
                        "contentSchema": _obj({"reconnect": {"type": "boolean", "const": True}}),
                    },
                },
                {"id": STR, "retry": INT},
            ),
        ]
    },
}

_NETWORK = {
    "name": "network",
    "in": "query",
    "required": False,
    "schema": NETWORK_OR_EMPTY,
    "description": "network name (default demo)",
}


def _query(name: str, schema: Schema, description: str, *, required: bool = False) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "schema": schema,
        "description": description,
    }


def _path(name: str, description: str, schema: Schema = KEY_HEX) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": schema,
        "description": description,
    }


def _json(schema: str, description: str = "OK") -> Schema:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


# Every route: a Host header that does not name this API (DNS-rebinding guard).
_HOST_ERROR = {"421": _json("Error", "the Host header does not name this API (fairdht.api.hosts)")}
_ERRORS = {
    "400": _json("Error", "bad input (nothing was sent to the DHT)"),
    "502": _json("Error", "the network failed"),
    "503": _json("Error", "no peer answered"),
    **_HOST_ERROR,
}
_AUTH_ERRORS = {
    **_ERRORS,
    "401": _json("Error", "missing or wrong bearer token"),
    "409": _json("Error", "peers answered and refused the record"),
    "413": _json("Error", "the body is larger than 64 KiB"),
}
_BODY_ERRORS = {**_AUTH_ERRORS, "415": _json("Error", "the body is not application/json")}
_SECURED: list[dict[str, list[str]]] = [{"token": []}]


# A history point: a commit id (prefix) or a checkpoint version.
_POINT = {"type": "string", "pattern": "^(v[0-9]{1,15}|[0-9a-fA-F]{4,64})$"}


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
        "responses": {status: ok, **(_AUTH_ERRORS if body is None else _BODY_ERRORS)},
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
                _path("key", "DHT key, 40 hex digits", _hex(KEY_BYTES)),
                _query("local", FLAG, "1: this node's store only"),
                _query("withdrawn", FLAG, "1: include withdrawals"),
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
            params=[_NETWORK, _query("karma", FLAG, "1: add each author's karma")],
        )
    },
    "/api/servers/{author}": {
        "get": _op(
            "One author key's servers, listed and held back",
            _json("AuthorServers"),
            params=[
                _path("author", "public key, 64 hex digits"),
                _NETWORK,
                _query("karma", FLAG, "1: add the author's karma"),
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
                _query("network", NETWORK_OR_EMPTY, "only this network (default: all)"),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "default 50"),
            ],
        )
    },
    "/api/history/diff": {
        "get": _op(
            "Servers added, removed, changed and quarantined between two points, with authors",
            _json("HistoryDiff"),
            params=[
                _NETWORK,
                _query(
                    "from",
                    _POINT,
                    "commit id (4+ hex digits) or checkpoint version vN",
                    required=True,
                ),
                _query(
                    "to",
                    _POINT,
                    "commit id (4+ hex digits) or checkpoint version vN",
                    required=True,
                ),
            ],
            responses={
                "200": _json("HistoryDiff"),
                "404": _json("Error", "no such commit or version"),
                **_ERRORS,
            },
        )
    },
    "/api/history/blame": {
        "get": _op(
            "Per author key over the whole history (compacted spans included)",
            _json("Blame"),
            params=[_NETWORK],
        )
    },
    "/api/history/graph": {
        "get": _op(
            "The spine of checkpoints and rollbacks, local commits and their edges",
            _json("HistoryGraph"),
            params=[
                _NETWORK,
                _query("limit", {"type": "integer", "minimum": 1, "maximum": 2000}, "default 200"),
            ],
        )
    },
    "/api/history/prepare": {
        "get": _op(
            "The exact CLI command for a checkpoint or rollback (nothing is signed)",
            _json("PreparedCommand"),
            params=[
                _NETWORK,
                _query(
                    "action",
                    {"type": "string", "enum": ["checkpoint", "rollback"]},
                    "checkpoint or rollback",
                    required=True,
                ),
                _query("target", _POINT, "rollback: the checkpoint (default: the newest)"),
            ],
            responses={
                "200": _json("PreparedCommand"),
                "404": _json("Error", "no such checkpoint"),
                **_ERRORS,
            },
        )
    },
    "/api/history/{commit}": {
        "get": _op(
            "One commit: its diff and the keys that made it",
            _json("CommitDetail"),
            params=[
                _path(
                    "commit",
                    "commit id or a unique prefix (4+ hex digits), or vN with network",
                    _POINT,
                ),
                _query("network", NETWORK_OR_EMPTY, "the network of a vN"),
            ],
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
                _query("explain", FLAG, "0: no votes list"),
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
                _query(
                    "players",
                    {
                        "type": "string",
                        "pattern": f"^([0-9a-fA-F]{{64}}(,[0-9a-fA-F]{{64}}){{0,{MAX_CLUSTER - 1}}})?$",
                    },
                    f"comma-separated player keys (at most {MAX_CLUSTER})",
                ),
                _query(
                    "match",
                    {"type": "string", "pattern": f"^[A-Za-z0-9._:-]{{1,{MAX_GAME_ID}}}$"},
                    "match id: use its revealed nonces",
                ),
                _query("count", {"type": "integer", "minimum": 1, "maximum": 64}, "default 1"),
                _query("explain", FLAG, "1: every candidate with status and reason"),
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
            parameters=[
                _NETWORK,
                _query("address", SERVER_ENDPOINT, "the server's IP:PORT", required=True),
            ],
        ),
    },
    "/api/events": {
        "get": {
            "summary": "Server-sent events: server.*, commit, checkpoint, rollback, karma.*",
            "parameters": [
                _query("network", NETWORK_OR_EMPTY, "only this network's events"),
                _query(
                    "after",
                    {"type": "integer", "minimum": 0, "maximum": 10**18 - 1},
                    "replay kept events after this id (or Last-Event-ID)",
                ),
            ],
            "responses": {
                "200": {
                    "description": "an endless text/event-stream; each data line is an Event",
                    # OpenAPI 3.1 has no itemSchema (3.2): the schema of a stream's media
                    # type describes each message, as schemathesis reads it.
                    "content": {"text/event-stream": {"schema": _ref("EventMessage")}},
                },
                "400": _json("Error", "bad input"),
                "503": _json("Error", "the node serves its most event streams; retry later"),
                **_HOST_ERROR,
            },
        }
    },
    "/api/openapi.json": {
        "get": {
            "summary": "This document",
            "responses": {
                "200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}},
                **_HOST_ERROR,
            },
        }
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus text format: peers, records, RPCs, drops, latency",
            "responses": {
                "200": {"description": "text", "content": {"text/plain": {}}},
                **_HOST_ERROR,
            },
        }
    },
    "/": {
        "get": {
            "summary": "The dashboard (HTML)",
            "responses": {
                "200": {"description": "page", "content": {"text/html": {}}},
                **_HOST_ERROR,
            },
        }
    },
    "/favicon.ico": {
        "get": {
            "summary": "The dashboard's icon (SVG)",
            "responses": {
                "200": {"description": "icon", "content": {"image/svg+xml": {}}},
                **_HOST_ERROR,
            },
        }
    },
}


def _operation_id(method: str, path: str) -> str:
    """``getServersAuthor`` for GET /api/servers/{author}; ``getDashboard`` for GET /."""
    words = [w.strip("{}") for w in re.split(r"[/._]", path.removeprefix("/api")) if w]
    return method + "".join(w[:1].upper() + w[1:] for w in words or ["dashboard"])


# OpenAPI links (§4.8.20): where a client finds the values of the next request in an
# answer. Schemathesis' stateful phase follows them, so it reaches real servers, commits
# and votes rather than random keys.
_LINKS: dict[tuple[str, str, str], dict[str, tuple[str, dict[str, str]]]] = {
    ("/api/servers", "get", "200"): {
        "ServerAuthor": (
            "getServersAuthor",
            {"author": "$response.body#/servers/0/author", "network": "$response.body#/network"},
        ),
        "AuthorKarma": ("getKarmaSubject", {"subject": "$response.body#/servers/0/author"}),
    },
    ("/api/history", "get", "200"): {
        "Commit": ("getHistoryCommit", {"commit": "$response.body#/commits/0/id"}),
    },
    ("/api/publish", "post", "201"): {
        "Withdraw": (
            "deletePublish",
            {"address": "$response.body#/address", "network": "$response.body#/network"},
        ),
        "Records": ("getRecordsKey", {"key": "$response.body#/record/key"}),
    },
    ("/api/records", "post", "201"): {
        "Records": ("getRecordsKey", {"key": "$response.body#/key"}),
    },
    ("/api/karma/vote", "post", "201"): {
        "Karma": (
            "getKarmaSubject",
            {"subject": "$response.body#/subject", "network": "$response.body#/network"},
        ),
    },
}

for _path_name, _ops in PATHS.items():
    for _method, _operation in _ops.items():
        _operation["operationId"] = _operation_id(_method, _path_name)
for (_path_name, _method, _status), _links in _LINKS.items():
    PATHS[_path_name][_method]["responses"][_status] = {
        **PATHS[_path_name][_method]["responses"][_status],
        "links": {
            name: {"operationId": target, "parameters": params}
            for name, (target, params) in _links.items()
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
