"""``GET /api/checkpoints?network=``: the checkpoints and rollbacks this node applied.

Read from the data dir's history file: the accepted policy (version, root, whether an
accepted rollback keeps the list closed) and every applied control with the keys that
signed it and the commit that applied it (k-of-n signatures, TUF section 5).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from fairdht.api.context import NODE
from fairdht.api.params import network_param
from fairdht.errors import RecordError
from fairdht.records.envelope import decode_record
from fairdht.records.kinds.checkpoint import CHECKPOINT_KIND, CheckpointBody
from fairdht.records.kinds.rollback import ROLLBACK_KIND, RollbackBody
from fairdht.serverlist.history import History

__all__ = ["applied_controls", "get_checkpoints", "open_history", "register"]


def open_history(request: web.Request) -> History:
    """The node's history file (created empty if the node never followed a list)."""
    return History(request.app[NODE].data_dir.root / "history.sqlite")


def applied_controls(history: History, network: str) -> list[dict[str, Any]]:
    """Every applied checkpoint and rollback of ``network``, oldest version first."""
    groups: dict[tuple[str, int], dict[str, Any]] = {}
    for raw in history.held_records(network):
        try:
            record = decode_record(raw)
        except RecordError:
            continue  # the history holds only records it validated; skip if one rots
        body = record.body
        doc: dict[str, Any]
        if record.kind == CHECKPOINT_KIND and isinstance(body, CheckpointBody):
            doc = {
                "kind": "checkpoint",
                "version": body.version,
                "root": body.root.hex(),
                "members": body.members.hex(),
                "count": body.count,
                "expires": body.expires,
                "target_version": None,
                "reason": "",
            }
        elif record.kind == ROLLBACK_KIND and isinstance(body, RollbackBody):
            doc = {
                "kind": "rollback",
                "version": body.version,
                "root": body.target_root.hex(),
                "members": body.target_members.hex(),
                "count": body.count,
                "expires": body.expires,
                "target_version": body.target_version,
                "reason": body.reason,
            }
        else:
            continue
        held = groups.setdefault((doc["kind"], doc["version"]), {**doc, "signers": []})
        held["signers"] = sorted({*held["signers"], record.author.hex()})
    commits: dict[tuple[str, int], str] = {
        (c.kind, c.version): c.id.hex()
        for c in history.log(network, limit=10_000)
        if c.kind != "sync"
    }
    out = []
    for key in sorted(groups, key=lambda k: (k[1], k[0])):
        out.append({**groups[key], "commit": commits.get(key)})
    return out


async def get_checkpoints(request: web.Request) -> web.Response:
    """The accepted policy and the applied controls of a network."""
    network = network_param(request)
    node = request.app[NODE]
    history = open_history(request)
    policy = history.policy(network)
    return web.json_response(
        {
            "network": network,
            "policy": {
                "version": policy.version,
                "root": policy.root.hex() if policy.root else None,
                "members": len(policy.members),
                "closed": policy.closed(node.clock()),
                "closed_until": policy.closed_until,
            },
            "checkpoints": applied_controls(history, network),
        }
    )


def register(app: web.Application) -> None:
    """Add the checkpoints route."""
    app.router.add_get("/api/checkpoints", get_checkpoints)
