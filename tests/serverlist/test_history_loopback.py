"""Three full nodes and a newcomer over real UDP on loopback: the same commit id for every
checkpoint and rollback, the newcomer's v1 is v1's signed root and members, and a server
announced and withdrawn between two reads still shows in every node's history."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from serverlist_helpers import NET, announce, join, key, put_all, run, start_nodes, stop_all

from fairdht.dht import DHTNode, connect
from fairdht.node.serverlist_replica import ServerListReplica
from fairdht.serverlist import History, leaf_id, withdrawal_record
from fairdht.serverlist.maintain import sign_checkpoint, sign_rollback
from fairdht.trust import TrustStore

MAINTAINERS = [key(f"maintainer-{i}") for i in range(3)]
FLOOD_KEYS = [key(f"flood-{i}") for i in range(4)]


def _trusting_dir(path: Path) -> Path:
    trust = TrustStore(path / "trust.sqlite")
    for m in MAINTAINERS:
        trust.add(NET, "checkpoint", m.public_key.raw)
    trust.set_threshold(NET, "checkpoint", 2)
    return path


def test_three_nodes_and_a_newcomer_agree_on_every_spine_commit(tmp_path: Path) -> None:
    async def main() -> None:
        nodes = await start_nodes(3)
        late: list[DHTNode] = []
        replicas = [
            ServerListReplica(n, _trusting_dir(tmp_path / f"node{i}"), [NET])
            for i, n in enumerate(nodes)
        ]
        entry = [nodes[0].address]

        async def sync_all() -> None:
            for r in replicas:
                await r.sync_once()

        async def maintainer(i: int, what: str, **kw: Any) -> Any:
            d = _trusting_dir(tmp_path / f"maintainer{i}")
            hist, trust = History(d / "history.sqlite"), TrustStore(d / "trust.sqlite")
            async with connect(entry) as c:
                fn = sign_checkpoint if what == "checkpoint" else sign_rollback
                return await fn(
                    c.get, c.put, MAINTAINERS[i], NET, history=hist, trust=trust,
                    now=time.time(), **kw,
                )  # fmt: skip

        try:
            await join(nodes, nodes[0].address)
            t0 = time.time()
            honest = [announce(key(f"honest-{i}"), f"127.0.20.{i}:28785", now=t0) for i in range(2)]
            assert await put_all(nodes[1], honest) == 2
            await sync_all()
            v1 = await maintainer(0, "checkpoint")
            await maintainer(1, "checkpoint", version=1, root=v1.root.hex())
            await sync_all()

            # A server announced and withdrawn between two reads (no round in between).
            brief = key("brief")
            shown = announce(brief, "127.0.30.1:28785", now=time.time())
            assert await put_all(nodes[2], [shown]) == 1
            tomb = withdrawal_record(brief, NET, "127.0.30.1:28785", now=time.time() + 1)
            assert await put_all(nodes[2], [tomb]) == 1
            flood = [
                announce(k, f"127.66.{i}.1:2000", now=time.time(), name="FREE")
                for i, k in enumerate(FLOOD_KEYS)
            ]
            assert await put_all(nodes[2], flood) == len(flood)
            await sync_all()
            for r in replicas:
                seen = [
                    (e.op, e.author, e.at)
                    for c in r.history.log(NET)
                    for e in c.entries
                    if e.author == brief.public_key.raw
                ]
                assert seen == [("withdrawn", brief.public_key.raw, tomb.issued_at)]

            for i in (2, 0):
                await maintainer(i, "rollback", to_root=v1.root.hex(), reason="flood")
            await sync_all()
            v3 = await maintainer(
                1, "checkpoint", include_quarantined=True,
                exclude=[k.public_key.raw for k in FLOOD_KEYS],
            )  # fmt: skip
            await maintainer(2, "checkpoint", version=3, root=v3.root.hex())
            await sync_all()

            spines = [[(c.kind, c.version, c.id) for c in r.history.spine(NET)] for r in replicas]
            assert [(k, v) for k, v, _ in spines[0]] == [
                ("checkpoint", 1),
                ("rollback", 2),
                ("checkpoint", 3),
            ]
            assert spines[0] == spines[1] == spines[2]

            late = await start_nodes(1, first=4)
            await late[0].bootstrap(entry)
            await late[0].settle()
            fresh = ServerListReplica(late[0], _trusting_dir(tmp_path / "late"), [NET])
            await fresh.sync_once()
            rebuilt = [(c.kind, c.version, c.id) for c in fresh.history.spine(NET)]
            assert rebuilt == spines[0]
            nv1 = fresh.history.show("v1", NET)
            assert nv1.root == v1.root and nv1.count == 2 and not nv1.observed
            assert {s.leaf for s in fresh.history.state_at(nv1).values()} == {
                leaf_id(NET, r.author, r.subkey, r.body.address) for r in honest
            }
            # Only the newest control is labelled with the list the newcomer saw.
            assert [c.observed for c in fresh.history.spine(NET)] == [False, False, True]
            for h in [*(r.history for r in replicas), fresh.history]:
                assert h.verify_chain(NET)
                diff = [d.to_json() for d in h.diff(NET, "v1", "v2")[2]]
                assert diff == []  # a rollback to v1 has v1's members
        finally:
            for r in replicas:
                await r.stop()
            await stop_all([*nodes, *late])

    run(main, timeout=110)
