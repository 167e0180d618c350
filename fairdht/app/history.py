"""The history flows: log, show, diff, blame, the graph, and preparing a maintainer's command.

``fairdht history ...``, ``GET /api/history...`` and the dashboard's History page all
call these, so a commit, a diff or a blame reads the same whichever way it is asked
(STYLE.md, "Each user flow once"). Each takes the data dir's ``History``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Literal

from fairdht.errors import NotFoundError, RecordError
from fairdht.records.envelope import decode_record
from fairdht.serverlist.diff import diff_states
from fairdht.serverlist.history import Commit, History
from fairdht.serverlist.spine import body_from_bytes, spine_id_of_body

__all__ = [
    "commit_signers",
    "history_blame",
    "history_diff",
    "history_graph",
    "history_log",
    "history_show",
    "prepare_control",
]


def commit_signers(history: History, network: str) -> dict[bytes, list[str]]:
    """Per spine commit id: the maintainer keys (hex) whose records this node holds."""
    out: dict[bytes, set[str]] = {}
    for raw in history.held_records(network):
        try:
            record = decode_record(raw)
        except RecordError:
            continue  # the history holds only records it validated; skip if one rots
        if record.withdrawn:
            continue
        cid = spine_id_of_body(record.kind, network, record.body)
        out.setdefault(cid, set()).add(record.author.hex())
    return {cid: sorted(keys) for cid, keys in out.items()}


def history_log(history: History, network: str | None, *, limit: int = 50) -> dict[str, Any]:
    """Newest commits first, of one network or of all."""
    commits = history.log(network, limit=limit)
    return {"network": network, "commits": [c.to_json() for c in commits]}


def history_show(history: History, commit: str, network: str | None = None) -> dict[str, Any]:
    """One commit: its entries, the author keys it touched and (spine) its signers.

    A spine commit also carries ``spine_diff``: its signed member list against its spine
    parent's, the same on every node.
    """
    c = history.show(commit, network)
    doc = c.to_json(with_entries=True)
    doc["authors"] = sorted({e.author.hex() for e in c.entries})
    doc["signers"] = commit_signers(history, c.network).get(c.id, []) if c.spine else []
    doc["spine_diff"] = None
    if c.spine:
        parents = [s for s in history.spine(c.network) if s.id == c.parent]
        old = history.state_at(parents[0], signed=True) if parents else {}
        doc["spine_diff"] = [
            d.to_json() for d in diff_states(old, history.state_at(c, signed=True))
        ]
    return doc


def _brief(c: Commit) -> dict[str, Any]:
    return {
        "id": c.id.hex(),
        "n": c.n,
        "kind": c.kind,
        "local": c.local,
        "version": c.version,
        "time": c.time,
        "root": c.root.hex(),
    }


def history_diff(history: History, network: str, old: str, new: str) -> dict[str, Any]:
    """Added, removed, changed and quarantined servers from ``old`` to ``new``, with authors.

    Each end is a commit id (prefix) or a checkpoint version ``vN``; versions compare
    signed member lists, so every node gives the same answer for them. ``controls``
    lists the spine commits in between and the keys that signed them.
    """
    a, b, changes = history.diff(network, old, new)
    per_author: dict[str, Counter[str]] = {}
    for d in changes:
        per_author.setdefault(d.author.hex(), Counter())[d.op] += 1
    lo, hi = sorted((a.n, b.n))
    signers = commit_signers(history, network)
    controls = [
        {**_brief(c), "signers": signers.get(c.id, []), "note": c.note}
        for c in history.between(network, lo, hi)
        if c.spine
    ]
    counts = Counter(d.op for d in changes)
    return {
        "network": network,
        "from": _brief(a),
        "to": _brief(b),
        "counts": {op: counts.get(op, 0) for op in ("added", "removed", "changed", "quarantined")},
        "changes": [d.to_json() for d in changes],
        "authors": {k: dict(v) for k, v in sorted(per_author.items())},
        "controls": controls,
    }


def history_blame(history: History, network: str) -> dict[str, Any]:
    """Per author key over the whole history (compacted spans included)."""
    rows = history.blame(network)
    return {"network": network, "authors": [r.to_json() for r in rows]}


def history_graph(history: History, network: str, *, limit: int = 200) -> dict[str, Any]:
    """What the History page draws: the spine, local commits between, and the edges.

    Edges: ``spine`` (a control to the one it names as parent), ``local`` (a commit to
    the one this node wrote before it) and ``revert`` (a rollback to the checkpoint it
    returns to). A commit that quarantined servers is marked ``flood``.
    """
    spine = history.spine(network)
    recent = history.log(network, limit=limit, entries=True)
    by_id = {c.id: c for c in recent}
    for s in spine:
        by_id.setdefault(s.id, s)
    signers = commit_signers(history, network)
    nodes = []
    for c in sorted(by_id.values(), key=lambda c: c.n):
        counts = c.counts()
        nodes.append(
            {
                **c.to_json(),
                "flood": counts.get("quarantined", 0) > 0,
                "signers": signers.get(c.id, []) if c.spine else [],
                "authors": len({e.author for e in c.entries}),
            }
        )
    edges: list[dict[str, str]] = []
    checkpoint_of = {s.version: s.id for s in spine if s.kind == "checkpoint"}
    for c in by_id.values():
        if c.spine and c.parent in by_id:
            edges.append({"from": c.parent.hex(), "to": c.id.hex(), "kind": "spine"})
        if c.prev in by_id and not (c.spine and c.prev == c.parent):
            assert c.prev is not None
            edges.append({"from": c.prev.hex(), "to": c.id.hex(), "kind": "local"})
        if c.kind == "rollback" and c.body is not None:
            target = _target_version(c)
            if target in checkpoint_of:
                edges.append(
                    {"from": c.id.hex(), "to": checkpoint_of[target].hex(), "kind": "revert"}
                )
    return {"network": network, "nodes": nodes, "edges": edges, "size": history.size(network)}


def _target_version(c: Commit) -> int:
    assert c.body is not None
    return int(getattr(body_from_bytes(c.kind, c.body), "target_version", 0))


def prepare_control(
    history: History,
    network: str,
    action: Literal["checkpoint", "rollback"],
    *,
    target: str | None = None,
) -> dict[str, Any]:
    """The exact CLI command a maintainer runs for a checkpoint or a rollback.

    Prepared from this node's own data only: a checkpoint command carries no root (the
    CLI reads the list and computes the root itself when it signs), and a rollback names
    a checkpoint of this node's spine, which the CLI accepts only if K trusted keys
    agreed on it. Nothing is signed here: the page never holds a maintainer key.
    """
    head = history.head(network)
    listed = len(history.state_leaves(network, "listed"))
    quarantined = len(history.state_leaves(network, "quarantined"))
    if action == "checkpoint":
        command = f"fairdht checkpoint sign --key MAINTAINER.key --network {network} --bootstrap HOST:PORT"
        return {
            "action": action,
            "network": network,
            "command": command,
            "listed": listed,
            "quarantined": quarantined,
            "head": head.id.hex() if head else None,
            "note": "the CLI reads the list and computes the root itself when it signs",
        }
    if target:
        c = history.show(target, network)
    else:
        checkpoints = [s for s in history.spine(network) if s.kind == "checkpoint"]
        if not checkpoints:
            raise NotFoundError(f"no checkpoint of {network} to return to in this history")
        c = checkpoints[-1]
    if c.kind != "checkpoint":
        raise NotFoundError(f"{target} is a {c.kind} commit, not a checkpoint to return to")
    command = (
        f"fairdht rollback --to {c.root.hex()} --network {network} "
        "--key MAINTAINER.key --bootstrap HOST:PORT --reason REASON"
    )
    return {
        "action": action,
        "network": network,
        "command": command,
        "target": {**_brief(c), "count": c.count},
        "listed": listed,
        "quarantined": quarantined,
        "note": "the CLI signs only a checkpoint K trusted keys agreed on",
    }
