"""The shared spine: every node, and a newcomer a month later, gives each checkpoint and
rollback the same commit id; rebuilt checkpoints keep their own signed root and members;
compaction keeps diff and blame."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from serverlist_helpers import NET, NOW, MemoryDHT, announce, key

from fairdht.serverlist import History, SyncResult, leaf_id, sync_network
from fairdht.serverlist.maintain import republish_controls, sign_checkpoint, sign_rollback
from fairdht.trust import TrustStore

M = [key(f"maintainer-{i}") for i in range(3)]
FLOOD = [key(f"flood-{i}") for i in range(5)]
MONTH = 30 * 24 * 3600


class Dir:
    """A data dir trusting the maintainers 2-of-3."""

    def __init__(self, path: Path) -> None:
        self.trust = TrustStore(path / "trust.sqlite", defaults={})
        for k in M:
            self.trust.add(NET, "checkpoint", k.public_key.raw)
        self.trust.set_threshold(NET, "checkpoint", 2)
        self.history = History(path / "history.sqlite")

    async def sync(self, dht: MemoryDHT, now: float) -> SyncResult:
        return await sync_network(
            dht.get_with_tombstones, NET, history=self.history, trust=self.trust, now=now
        )


def _expire(dht: MemoryDHT, now: float) -> None:
    """Drop records whose envelope expired, as every DHT replica does."""
    for slots in dht.data.values():
        for slot in [s for s, r in slots.items() if r.expires_at <= now]:
            del slots[slot]


async def _story(tmp_path: Path) -> dict[str, Any]:
    dht = MemoryDHT()
    nodes = [Dir(tmp_path / f"node{i}") for i in range(3)]
    maint = [Dir(tmp_path / f"maintainer{i}") for i in range(3)]

    async def sync(now: float, which: list[Dir] | None = None) -> None:
        for n in which if which is not None else nodes:
            await n.sync(dht, now)

    async def cp(i: int, now: float, **kw: Any) -> Any:
        return await sign_checkpoint(
            dht.get, dht.put, M[i], NET, history=maint[i].history, trust=maint[i].trust,
            now=now, lifetime=3600, **kw,
        )  # fmt: skip

    honest = [announce(key(f"h{i}"), f"10.0.{i}.1:28785", now=NOW) for i in range(3)]
    for r in honest:
        dht.put_now(r)
    await sync(NOW, nodes[:2])
    v1 = await cp(0, NOW + 1)
    await cp(1, NOW + 2, version=1, root=v1.root.hex())
    await sync(NOW + 3, nodes[:2])
    flood = [
        announce(k, f"10.66.{i}.1:2000", now=NOW + 4, name="FREE") for i, k in enumerate(FLOOD)
    ]
    for r in flood:
        dht.put_now(r)
    await sync(NOW + 5, nodes[:2])
    for i in (2, 0):
        await sign_rollback(
            dht.get, dht.put, M[i], NET, v1.root.hex(), history=maint[i].history,
            trust=maint[i].trust, now=NOW + 6, reason="flood", lifetime=3600,
        )  # fmt: skip
    await sync(NOW + 7)  # node 2 joins here: it never saw v1 live
    v3 = await cp(1, NOW + 8, include_quarantined=True, exclude=[k.public_key.raw for k in FLOOD])
    await cp(2, NOW + 9, version=3, root=v3.root.hex())
    await sync(NOW + 10)
    return {"dht": dht, "nodes": nodes, "maint": maint, "v1": v1, "v3": v3, "honest": honest}


def test_every_node_and_a_month_late_newcomer_share_the_spine(tmp_path: Path) -> None:
    async def main() -> None:
        s = await _story(tmp_path)
        dht, nodes, v1 = s["dht"], s["nodes"], s["v1"]
        spines = [[c.id for c in n.history.spine(NET)] for n in nodes]
        assert len(spines[0]) == 3 and spines[0] == spines[1] == spines[2]
        first = nodes[0].history.spine(NET)
        assert [(c.kind, c.version) for c in first] == [
            ("checkpoint", 1),
            ("rollback", 2),
            ("checkpoint", 3),
        ]
        # Each names the one before it, inside the signed body.
        assert [c.parent for c in first] == [None, first[0].id, first[1].id]
        assert all(n.history.verify_chain(NET) for n in nodes)

        # For a month, envelopes expire (7 days at most) while maintainers re-publish
        # theirs every 5 days (same bodies, fresh envelopes); then a newcomer rebuilds.
        for t in [NOW + 1800, *(NOW + day * 86400 for day in range(5, 31, 5))]:
            _expire(dht, t)
            for i in range(3):
                count = await republish_controls(
                    dht.get, dht.put, M[i], NET, history=s["maint"][i].history, now=t
                )
                assert count >= 1
        late = NOW + MONTH
        _expire(dht, late)
        newcomer = Dir(tmp_path / "newcomer")
        result = await newcomer.sync(dht, late)
        assert result.applied == ()  # expired: history only, never policy
        rebuilt = newcomer.history.spine(NET)
        assert [c.id for c in rebuilt] == spines[0]
        assert not any(c.observed for c in rebuilt)
        nv1 = newcomer.history.show("v1", NET)
        assert nv1.root == v1.root and nv1.count == 3
        assert {x.leaf for x in newcomer.history.state_at(nv1).values()} == {
            leaf_id(NET, r.author, r.subkey, r.body.address) for r in s["honest"]
        }
        assert newcomer.history.verify_chain(NET)
        # Versions compare signed member lists: the same diff on every node.
        diffs = [
            [d.to_json() for d in n.history.diff(NET, "v1", "v3")[2]] for n in [*nodes, newcomer]
        ]
        assert diffs[0] == diffs[1] == diffs[2] == diffs[3]
        assert [d["op"] for d in diffs[0]] == []  # v3 re-admitted no one new here

    asyncio.run(main())


def test_compaction_folds_local_commits_and_keeps_diff_and_blame(tmp_path: Path) -> None:
    async def main() -> None:
        s = await _story(tmp_path)
        node = s["nodes"][0]
        h = node.history
        before = h.size(NET)
        blame = {r.author: r for r in h.blame(NET)}
        spine = h.spine(NET)
        head = h.head(NET)
        assert head is not None
        pairs = [(a.id.hex(), head.id.hex()) for a in spine] + [
            (spine[0].id.hex(), spine[1].id.hex())
        ]
        whole = [[d.to_json() for d in h.diff(NET, a, b)[2]] for a, b in pairs]
        assert h.compact(NET, now=NOW + 11, retention=3600).commits == 0  # all too young
        done = h.compact(NET, now=NOW + 10 + 86400, retention=3600)
        assert done.commits >= 2
        after = h.size(NET)
        assert after["local_commits"] == before["local_commits"] - done.commits
        assert after["spine_commits"] == before["spine_commits"] == 3
        assert after["entries"] < before["entries"]
        assert {r.author: r for r in h.blame(NET)} == blame
        again = [[d.to_json() for d in h.diff(NET, a, b)[2]] for a, b in pairs]
        assert again == whole
        assert h.verify_chain(NET)
        folded = [c for c in h.spine(NET) if c.folded]
        assert folded and all(c.kind in ("checkpoint", "rollback") for c in folded)

    asyncio.run(main())
