"""Checkpoint v1 (2-of-3), a 500-record flood, and rollbacks over real UDP on loopback.

Every full node runs the server-list replica (history in its own SQLite file); a fifth
node joins after the rollback and reaches the same state from the network alone.
"""

from __future__ import annotations

import time
from pathlib import Path

from serverlist_helpers import NET, announce, join, key, put_all, run, start_nodes, stop_all

from fairdht.dht import DHTNode, connect
from fairdht.node.serverlist_replica import ServerListReplica
from fairdht.records.kinds.rollback import RollbackBody
from fairdht.serverlist import (
    History,
    decode_members,
    inclusion_proof,
    rollback_key,
    rollback_record,
    verify_inclusion,
)
from fairdht.serverlist.maintain import sign_checkpoint, sign_rollback
from fairdht.trust import TrustStore

MAINTAINERS = [key(f"maintainer-{i}") for i in range(3)]
FLOOD_KEYS = [key(f"flood-{i}") for i in range(50)]


def _trusting_dir(path: Path) -> Path:
    trust = TrustStore(path / "trust.sqlite")
    for m in MAINTAINERS:
        trust.add(NET, "checkpoint", m.public_key.raw)
    trust.set_threshold(NET, "checkpoint", 2)
    return path


def _flood(now: float, name: str) -> list:  # type: ignore[type-arg]
    return [
        announce(k, f"127.66.{i}.1:{2000 + p}", now=now, name=name)
        for i, k in enumerate(FLOOD_KEYS)
        for p in range(10)
    ]


def test_flood_then_trusted_rollback_on_every_node(tmp_path: Path) -> None:
    async def main() -> None:
        nodes = await start_nodes(4)
        late: list[DHTNode] = []
        replicas = [
            ServerListReplica(n, _trusting_dir(tmp_path / f"node{i}"), [NET])
            for i, n in enumerate(nodes)
        ]
        entry = [nodes[0].address]

        async def sync_all() -> list[bytes]:
            roots = []
            for r in replicas:
                result = (await r.sync_once())[NET]
                roots.append(result.listing.root)
            return roots

        async def maintainer(i: int, what: str, **kw: object):  # type: ignore[no-untyped-def]
            # Maintainers keep their own data dir with the same 2-of-3 trust policy.
            d = _trusting_dir(tmp_path / f"maintainer{i}")
            hist, trust = History(d / "history.sqlite"), TrustStore(d / "trust.sqlite")
            async with connect(entry) as c:
                fn = sign_checkpoint if what == "checkpoint" else sign_rollback
                return await fn(
                    c.get, c.put, MAINTAINERS[i], NET, history=hist, trust=trust,
                    now=time.time(), **kw,  # type: ignore[arg-type]
                )  # fmt: skip

        try:
            await join(nodes, nodes[0].address)
            t0 = time.time()
            honest = [announce(key(f"honest-{i}"), f"127.0.20.{i}:28785", now=t0) for i in range(3)]
            assert await put_all(nodes[1], honest) == 3
            roots = await sync_all()
            assert len(set(roots)) == 1

            # Checkpoint v1: proposed by maintainer 0, co-signed by maintainer 1.
            proposal = await maintainer(0, "checkpoint")
            assert (proposal.version, proposal.count, proposal.signers) == (1, 3, 1)
            assert proposal.root == roots[0]
            cosign = await maintainer(1, "checkpoint", version=1, root=proposal.root.hex())
            assert cosign.signers == 2 and cosign.cosigned
            v1_root = proposal.root
            await sync_all()
            for r in replicas:
                assert r.latest[NET].policy.version == 1
                assert all(e.verified for e in r.latest[NET].listing.listed)

            # The flood: 500 announcements from 50 keys on 50 distinct addresses.
            assert await put_all(nodes[2], _flood(time.time(), "FREE")) == 500
            for root in await sync_all():
                assert root != v1_root
            assert all(len(r.latest[NET].listing.listed) == 503 for r in replicas)

            # Untrusted keys (3 of them) and one trusted key alone change nothing.
            v1_body = RollbackBody(2, 1, v1_root, proposal.members, 3, int(t0) + 3600, "evil")
            evil = [
                rollback_record(key(f"evil-{i}"), NET, v1_body, now=time.time()) for i in range(3)
            ]
            assert await put_all(nodes[3], evil) == 3
            alone = await maintainer(2, "rollback", to_root=v1_root.hex()[:16], reason="flood")
            assert (alone.version, alone.signers, alone.cosigned) == (2, 1, False)
            assert all(root != v1_root for root in await sync_all())
            # Untrusted keys' rollbacks live under their own keys, which no replica reads.
            assert "untrusted" not in replicas[0].latest[NET].ignored
            assert replicas[0].latest[NET].ignored["under_threshold"] == 1

            # The second trusted key co-signs: every node returns to v1's members.
            both = await maintainer(0, "rollback", to_root=v1_root.hex(), reason="flood")
            assert (both.version, both.signers, both.cosigned) == (2, 2, True)
            assert await sync_all() == [v1_root] * 4
            for r in replicas:
                listing = r.latest[NET].listing
                assert {e.record for e in listing.listed} == set(honest)
                assert len(listing.quarantined) == 500
                kinds = [c.kind for c in r.history.log(NET)]
                assert kinds[0] == "rollback"
                assert r.history.verify_chain(NET)

            # The flood re-published with newer seqs stays out.
            assert await put_all(nodes[2], _flood(time.time() + 1, "AGAIN")) == 500
            assert await sync_all() == [v1_root] * 4

            # A node started after the rollback reaches the same state.
            late = await start_nodes(1, first=5)
            await late[0].bootstrap(entry)
            await late[0].settle()
            fresh = ServerListReplica(late[0], _trusting_dir(tmp_path / "late"), [NET])
            result = (await fresh.sync_once())[NET]
            assert [(c.kind, c.version) for c in result.applied] == [
                ("checkpoint", 1),
                ("rollback", 2),
            ]
            assert result.listing.root == v1_root
            assert {e.record for e in result.listing.listed} == set(honest)

            # It proves membership from the fetched member list, and refuses an outsider.
            members = decode_members(fresh.history.member_list(proposal.members) or b"")
            leaf = members.leaves[1]
            index, size, path = inclusion_proof(list(members.leaves), leaf)
            assert verify_inclusion(leaf, index, size, path, v1_root)
            outsider = result.listing.quarantined[0].leaf
            assert not verify_inclusion(outsider, index, size, path, v1_root)

            # Blame on every node names exactly the flood's keys.
            flood_authors = {k.public_key.raw for k in FLOOD_KEYS}
            for r in [*replicas, fresh]:
                blamed = {row.author for row in r.history.blame(NET) if row.quarantined_now}
                assert blamed == flood_authors

            # A replay of the old rollback after a newer checkpoint changes nothing.
            newcomer = announce(key("newcomer"), "127.0.21.1:28785", now=time.time())
            assert await put_all(nodes[1], [newcomer]) == 1
            await sync_all()
            v3 = await maintainer(
                1, "checkpoint", include_quarantined=True,
                exclude=[k.public_key.raw for k in FLOOD_KEYS],
            )  # fmt: skip
            assert (v3.version, v3.count) == (3, 4)
            await maintainer(2, "checkpoint", version=3, root=v3.root.hex())
            assert await sync_all() == [v3.root] * 4
            old = [
                r
                for m in MAINTAINERS
                for r in await nodes[0].get(rollback_key(NET, m.public_key.raw))
                if r.kind == "rollback"
            ]
            assert len(old) >= 2
            for n in nodes:
                for record in old:
                    await n.put(record)
            assert await sync_all() == [v3.root] * 4
            assert replicas[0].latest[NET].ignored["replayed"] >= 2
            assert len(replicas[0].latest[NET].listing.listed) == 4
        finally:
            for r in replicas:
                await r.stop()
            await stop_all([*nodes, *late])

    run(main, timeout=110)
