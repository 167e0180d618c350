"""The bounded crawl and the publish path, over an in-memory key-value map (no network)."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from karma_testkit import NETWORK, NOW, key, pub

from fairdht.errors import StaleRecord
from fairdht.karma import (
    CrawlPlan,
    KarmaPolicy,
    cast_vote,
    fetch_view,
    index_subjects,
    karma_of,
    score_subject,
)
from fairdht.records import Record
from fairdht.records.kinds.karma import index_key, vote_key


class FakeDHT:
    """Newest record per slot under each key, as DHT storage keeps them; counts gets."""

    def __init__(self) -> None:
        self.slots: dict[bytes, dict[tuple[bytes, bytes], Record]] = defaultdict(dict)
        self.gets: list[bytes] = []

    async def put(self, record: Record) -> int:
        held = self.slots[record.key].get(record.slot)
        if held is not None and record.seq <= held.seq:
            raise StaleRecord("not newer")
        self.slots[record.key][record.slot] = record
        return 1

    async def get(self, dht_key: bytes) -> list[Record]:
        self.gets.append(dht_key)
        return list(self.slots.get(dht_key, {}).values())


def _cast(dht: FakeDHT, voter: int, subject: int, action: str, at: float, **kw: object) -> None:
    asyncio.run(
        cast_vote(
            dht.put,
            dht.get,
            key(voter),
            network=NETWORK,
            subject=pub(subject),
            action=action,
            now=at,
            **kw,  # type: ignore[arg-type]
        )
    )


def _show(
    dht: FakeDHT,
    reader: int,
    subject: int,
    *,
    policy: KarmaPolicy | None = None,
    trusted: frozenset[bytes] = frozenset(),
) -> tuple[float, str]:
    fetched = asyncio.run(
        fetch_view(
            dht.get,
            network=NETWORK,
            reader=pub(reader),
            subjects=[pub(subject)],
            policy=policy or KarmaPolicy(),
            now=NOW + 100,
            trusted=trusted,
        )
    )
    return karma_of(fetched.view, pub(subject))


def test_seed_example_through_publish_and_crawl() -> None:
    dht = FakeDHT()
    aa, bb, cc, dd = 1, 2, 3, 4
    _cast(dht, aa, bb, "connected_ok", NOW)
    _cast(dht, bb, aa, "teamkill_kick", NOW + 1)
    _cast(dht, aa, bb, "kicked", NOW + 2)
    assert index_subjects(asyncio.run(dht.get(index_key(NETWORK, pub(aa)))), pub(aa)) == [pub(bb)]
    assert _show(dht, aa, bb) == (-1.0, "red")
    assert _show(dht, bb, aa)[1] == "red"
    assert _show(dht, cc, aa, trusted=frozenset({pub(bb)}))[1] == "red"
    assert _show(dht, dd, aa) == (0.0, "neutral")


def test_withdrawal_keeps_the_index_honest() -> None:
    dht = FakeDHT()
    _cast(dht, 1, 2, "connected_ok", NOW)
    _cast(dht, 1, 2, "kicked", NOW + 1)
    _cast(dht, 1, 2, "kicked", NOW + 2, withdraw=True)
    me = pub(1)
    assert index_subjects(asyncio.run(dht.get(index_key(NETWORK, me))), me) == [pub(2)]
    # Only the +1 remains (weighted by the reader's own share, which its up-vote shares).
    score, color = _show(dht, 1, 2)
    assert 0.0 < score < 1.0 and color == "green"
    _cast(dht, 1, 2, "connected_ok", NOW + 3, withdraw=True)
    assert index_subjects(asyncio.run(dht.get(index_key(NETWORK, me))), me) == []
    assert _show(dht, 1, 2) == (0.0, "neutral")


def test_positive_trust_reaches_three_hops_and_no_further() -> None:
    dht = FakeDHT()
    # reader 10 -> 11 -> 12 -> 13 -> 14, and each of 11..14 up-votes subject 50.
    for i in range(10, 14):
        _cast(dht, i, i + 1, "connected_ok", NOW + i)
    for i in range(11, 15):
        _cast(dht, i, 50, "session_completed", NOW + 20 + i)
    dht.gets.clear()  # count only the reader's gets
    fetched = asyncio.run(
        fetch_view(
            dht.get,
            network=NETWORK,
            reader=pub(10),
            subjects=[pub(50)],
            policy=KarmaPolicy(),
            now=NOW + 100,
        )
    )
    weights = {v.voter: v.weight for v in score_subject(fetched.view, pub(50)).votes}
    assert weights[pub(11)] > weights[pub(12)] > weights[pub(13)] > 0
    assert weights[pub(14)] == 0.0  # four hops away: unknown
    # The crawl read indexes of hops 0-2, and of hop 3 only for a voter on the subject.
    asked = set(dht.gets)
    assert index_key(NETWORK, pub(13)) in asked
    assert index_key(NETWORK, pub(14)) not in asked


def test_the_record_bound_stops_the_crawl() -> None:
    dht = FakeDHT()
    for i in range(30):
        _cast(dht, 1, 100 + i, "connected_ok", NOW + i)
        _cast(dht, 100 + i, 200, "connected_ok", NOW + 40 + i)
    plan = CrawlPlan(
        network=NETWORK,
        reader=pub(1),
        subjects=[pub(200)],
        policy=KarmaPolicy(max_records=25),
        now=NOW + 100,
    )

    async def run() -> None:
        while keys := plan.next_keys(4):
            for k in keys:
                plan.feed(k, await dht.get(k))

    asyncio.run(run())
    assert plan.done
    assert plan.fetched == 25
    assert len(plan.records()) <= 25
    assert plan.dropped["over_limit"] > 0


def test_records_under_the_wrong_key_are_dropped() -> None:
    dht = FakeDHT()
    _cast(dht, 1, 2, "connected_ok", NOW)
    _cast(dht, 3, 4, "cheating", NOW)
    stray = list(dht.slots[vote_key(NETWORK, pub(4))].values())

    async def lying_get(k: bytes) -> list[Record]:
        return [*(await dht.get(k)), *stray]

    fetched = asyncio.run(
        fetch_view(
            lying_get,
            network=NETWORK,
            reader=pub(1),
            subjects=[pub(2)],
            policy=KarmaPolicy(),
            now=NOW + 10,
        )
    )
    assert fetched.dropped["wrong_key"] >= 1
    assert pub(4) not in fetched.view.votes_by_subject
