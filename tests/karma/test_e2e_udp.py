"""The seed's example end to end between real nodes on loopback UDP.

Inexor seed, "Rating": AA connects to BB fine (+1); BB kicks AA for team-killing
(-3); AA rates BB -2 for the kick. AA lists BB red; BB sees AA negatively; a third
server that trusts BB as a rater sees AA as a team-killer; one that does not is unmoved.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import time
from pathlib import Path

import pytest
from karma_testkit import NETWORK

from fairdht.dht import DHTConfig, DHTNode
from fairdht.dht.storage import MemoryRecordStore
from fairdht.errors import BadSignature, NotAcceptedError
from fairdht.identity import SigningKey
from fairdht.karma import KarmaPolicy, cast_vote, fetch_view, score_subject
from fairdht.node.karma_state import KarmaState
from fairdht.records import Record
from fairdht.trust import TrustStore

FAST = DHTConfig(rpc_timeout=0.5, replicate_interval=3600.0)


def _key(label: str) -> SigningKey:
    return SigningKey(hashlib.blake2b(label.encode(), digest_size=32).digest())


async def _nodes(labels: list[str]) -> dict[str, DHTNode]:
    nodes = {}
    for n, label in enumerate(labels, start=1):
        node = DHTNode(_key(label), MemoryRecordStore(), config=FAST)
        await node.listen(f"127.0.{n}.1", 0)
        nodes[label] = node
    first = nodes[labels[0]]
    for label in labels[1:]:
        await nodes[label].bootstrap([first.address])
    for node in nodes.values():
        await node.settle()
    return nodes


async def _stop(nodes: dict[str, DHTNode]) -> None:
    for node in nodes.values():
        await node.stop()
        node.store.close()


def test_seed_example_between_four_servers(tmp_path: Path) -> None:
    names = ["AA", "BB", "CC", "DD"]

    async def main() -> None:
        nodes = await _nodes(names)
        keys = {n: _key(n) for n in names}
        pub = {n: keys[n].public_key.raw for n in names}
        try:

            async def vote(voter: str, subject: str, action: str, **kw: object) -> None:
                node = nodes[voter]
                await cast_vote(
                    node.put,
                    node.get,
                    keys[voter],
                    network=NETWORK,
                    subject=pub[subject],
                    action=action,
                    now=time.time(),
                    **kw,  # type: ignore[arg-type]
                )

            await vote("AA", "BB", "connected_ok", context="session-1")
            await vote("BB", "AA", "teamkill_kick", context="session-1")
            await vote("AA", "BB", "kicked", context="session-1")

            cc_trust = TrustStore(tmp_path / "cc" / "trust.sqlite")
            cc_trust.add(NETWORK, "karma", pub["BB"])
            dd_trust = TrustStore(tmp_path / "dd" / "trust.sqlite")

            async def show(reader: str, subject: str, trust: TrustStore | None = None):  # type: ignore[no-untyped-def]
                fetched = await fetch_view(
                    nodes[reader].get,
                    network=NETWORK,
                    reader=pub[reader],
                    subjects=[pub[subject]],
                    policy=KarmaPolicy(),
                    now=time.time(),
                    trusted=trust.keys(NETWORK, "karma") if trust else frozenset(),
                    distrusted=trust.distrusted(NETWORK) if trust else frozenset(),
                )
                return score_subject(fetched.view, pub[subject])

            aa_on_bb = await show("AA", "BB")
            assert (aa_on_bb.score, aa_on_bb.color) == (-1.0, "red")
            assert sorted(v.action for v in aa_on_bb.votes) == ["connected_ok", "kicked"]
            bb_on_aa = await show("BB", "AA")
            assert bb_on_aa.score < 0 and bb_on_aa.color == "red"
            cc_on_aa = await show("CC", "AA", cc_trust)
            assert cc_on_aa.color == "red"
            (tk,) = cc_on_aa.votes
            assert (tk.voter, tk.action, tk.status) == (pub["BB"], "teamkill_kick", "counted")
            dd_on_aa = await show("DD", "AA", dd_trust)
            assert (dd_on_aa.score, dd_on_aa.color) == (0.0, "neutral")
            assert [v.status for v in dd_on_aa.votes] == ["unknown_voter"]

            # DD distrusting BB changes nothing for DD, and CC distrusting BB unmoves CC.
            cc_trust.remove(NETWORK, "karma", pub["BB"])
            cc_trust.distrust(NETWORK, pub["BB"])
            cc_again = await show("CC", "AA", cc_trust)
            assert (cc_again.score, cc_again.color) == (0.0, "neutral")
            assert [v.status for v in cc_again.votes] == ["distrusted"]
        finally:
            await _stop(nodes)

    asyncio.run(asyncio.wait_for(main(), 60))


def test_withdrawal_and_replay_over_the_network(tmp_path: Path) -> None:
    async def main() -> None:
        nodes = await _nodes(["R1", "R2", "R3"])
        voter, subject = _key("voter"), _key("subject").public_key.raw
        reader = voter.public_key.raw
        state = KarmaState(tmp_path / "karma.sqlite")

        async def look(via: DHTNode, *, marks: bool = True):  # type: ignore[no-untyped-def]
            async def get(key: bytes) -> list[Record]:
                return await via.get(key, include_withdrawn=True)

            fetched = await fetch_view(
                get,
                network=NETWORK,
                reader=reader,
                subjects=[subject],
                policy=KarmaPolicy(),
                now=time.time(),
                high_water=state.high_water(NETWORK, now=time.time()) if marks else None,
            )
            state.raise_marks(NETWORK, fetched.high_water, now=time.time())
            return fetched

        node = nodes["R1"]
        try:
            t0 = time.time()
            cast = await cast_vote(
                node.put, node.get, voter, network=NETWORK, subject=subject, action="kicked", now=t0
            )
            old = cast.record
            # A vote whose signature does not verify never leaves the node.
            tampered = bytearray(old.raw)
            tampered[-1] ^= 0x01
            with pytest.raises(BadSignature, match="signature does not verify"):
                await nodes["R2"].put(dataclasses.replace(old, raw=bytes(tampered)))
            assert len((await look(nodes["R3"])).view.votes_by_subject[subject]) == 1
            gone = await cast_vote(
                node.put,
                node.get,
                voter,
                network=NETWORK,
                subject=subject,
                action="kicked",
                withdraw=True,
                now=t0 + 1,
            )
            assert gone.record.withdrawn and gone.index_subjects == 0
            # Replaying the old vote: every replica holds the newer withdrawal.
            with pytest.raises(NotAcceptedError):
                await nodes["R2"].put(old)
            fetched = await look(nodes["R3"])
            assert fetched.view.votes_by_subject == {}
            assert fetched.dropped.get("withdrawn") == 1
        finally:
            await _stop(nodes)
        # The network forgets (every replica restarted empty) and someone re-puts the
        # old, still unexpired vote: the reader's marks in karma.sqlite drop it.
        fresh = await _nodes(["R4", "R5", "R6"])
        try:
            assert (await fresh["R4"].put(old)).accepted >= 1
            replayed = await look(fresh["R5"])
            assert replayed.view.votes_by_subject == {}
            assert replayed.dropped == {"replayed": 1}
            # Without the marks the replay would have counted.
            assert subject in (await look(fresh["R5"], marks=False)).view.votes_by_subject
        finally:
            await _stop(fresh)

    asyncio.run(asyncio.wait_for(main(), 60))
