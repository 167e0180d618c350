"""Storage per source (issue 12): fair shares of a key per /24, quotas per source, eviction.

Every rule runs against both stores; the SQLite store also keeps sources across a
reopen and migrates a schema-1 file.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from storage_testkit import NOW, STORE_KINDS, open_store, record, subkey_in_shard

from fairdht.dht.storage import (
    LEGACY,
    LOCAL,
    Evict,
    Quotas,
    RecordStore,
    Source,
    SQLiteRecordStore,
    Usage,
    decide_put,
)
from fairdht.errors import QuotaExceeded
from fairdht.records import Record

ATTACKER = [Source.client(f"203.0.113.{n}") for n in range(1, 5)]  # one /24
HONEST = Source.client("198.51.100.7")
CGNAT = Source.client("100.64.0.1")


@pytest.fixture(params=STORE_KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def shard0(i: int, n: int = 0, **kw: object) -> Record:
    """Author ``i``'s n-th server record in shard 0: every one lands under one DHT key."""
    return record(i, subkey_in_shard(i, 0, n), **kw)  # type: ignore[arg-type]


def elsewhere(i: int, n: int) -> Record:
    """Author ``i``'s n-th record in shard 1 (another DHT key)."""
    return record(i, subkey_in_shard(i, 1, n))


@pytest.fixture
def small(kind: str, tmp_path: Path) -> Iterator[RecordStore]:
    s = open_store(kind, tmp_path, Quotas(max_per_key=8))
    yield s
    s.close()


def held_by(store: RecordStore, key: bytes) -> set[bytes]:
    return {r.author for r in store.get(key, now=NOW)}


def test_a_full_key_makes_room_for_a_lighter_subnet(small: RecordStore) -> None:
    junk = [shard0(i, ttl=500 + i) for i in range(10, 18)]
    for n, r in enumerate(junk):
        assert small.put(r.key, r, now=NOW, source=ATTACKER[n % 4]) == "stored"
    key = junk[0].key
    # The key is full of one /24; more keys from that /24 are refused...
    more = shard0(18)
    with pytest.raises(QuotaExceeded, match="key quota"):
        small.put(key, more, now=NOW, source=ATTACKER[0])
    # ...while an honest record from another /24 evicts one of the junk records.
    honest = shard0(1)
    assert small.put(key, honest, now=NOW, source=HONEST) == "stored"
    assert honest.author in held_by(small, key)
    assert small.count() == 8
    assert small.counters()["evicted"] == 1
    # The junk expiring first went (victim order), and the flood cannot push back in.
    assert junk[0].author not in held_by(small, key)
    with pytest.raises(QuotaExceeded, match="key quota"):
        small.put(key, more, now=NOW, source=ATTACKER[1])
    assert honest.author in held_by(small, key)


def test_shares_settle_at_equal_parts_per_subnet(small: RecordStore) -> None:
    key = shard0(10).key
    for n, i in enumerate(range(10, 18)):
        small.put(key, shard0(i), now=NOW, source=ATTACKER[n % 4])
    # Three honest /24s take turns: each may take slots while it holds two fewer than
    # the heaviest /24; 8 slots over 4 subnets settle at 2 each, without flapping.
    others = [Source.client(f"198.51.{n}.1") for n in range(3)]
    stored = {s.net: 0 for s in others}
    for i in range(30, 60):
        source = others[i % 3]
        try:
            small.put(key, shard0(i), now=NOW, source=source)
            stored[source.net] += 1
        except QuotaExceeded:
            pass
    assert sorted(stored.values()) == [2, 2, 2]
    assert len(small.get(key, now=NOW)) == 8


def test_the_node_own_records_are_never_evicted(small: RecordStore) -> None:
    key = shard0(10).key
    mine = [shard0(i) for i in range(10, 13)]
    for r in mine:
        small.put(key, r, now=NOW)  # LOCAL
    for i in range(13, 18):
        small.put(key, shard0(i), now=NOW, source=ATTACKER[0])
    for i in range(30, 40):
        source = Source.client(f"198.51.{i}.1")
        with contextlib.suppress(QuotaExceeded):
            small.put(key, shard0(i), now=NOW, source=source)
    assert {r.author for r in mine} <= held_by(small, key)


def test_the_records_of_trusted_keys_are_never_evicted(small: RecordStore) -> None:
    # A maintainer's record reached this node through the flooding /24 (replication by
    # a contact there): the node trusts its author, so eviction passes it over.
    key = shard0(10).key
    maintainer = shard0(10, ttl=100)  # expires first: the victim order would pick it
    small.protect({maintainer.author})
    small.put(key, maintainer, now=NOW, source=ATTACKER[0])
    for n, i in enumerate(range(11, 18)):
        small.put(key, shard0(i, ttl=500 + i), now=NOW, source=ATTACKER[n % 4])
    for i in range(30, 40):
        with contextlib.suppress(QuotaExceeded):
            small.put(key, shard0(i), now=NOW, source=Source.client(f"198.51.{i}.1"))
    assert maintainer.author in held_by(small, key)
    assert small.counters()["evicted"] >= 3  # others of that /24 made room instead


def test_per_ip_and_per_subnet_byte_quotas(kind: str, tmp_path: Path) -> None:
    size = len(elsewhere(10, 0).raw)
    with open_store(kind, tmp_path, Quotas(max_per_ip=3 * size, max_per_net=5 * size)) as s:
        refusals: list[str] = []
        for i in range(10, 40):  # many free keys behind one IP
            r = elsewhere(i, 0)
            try:
                s.put(r.key, r, now=NOW, source=ATTACKER[0])
            except QuotaExceeded as exc:
                refusals.append(str(exc))
        assert len(refusals) == 27 and all("source quota" in e for e in refusals)
        # Another IP of the same /24 gets only the rest of the /24's share.
        refusals.clear()
        for i in range(40, 50):
            r = elsewhere(i, 0)
            try:
                s.put(r.key, r, now=NOW, source=ATTACKER[1])
            except QuotaExceeded as exc:
                refusals.append(str(exc))
        assert len(refusals) == 8 and all("subnet quota" in e for e in refusals)
        # Another /24 is untouched; the node's own puts are not a source quota.
        r = elsewhere(2, 0)
        assert s.put(r.key, r, now=NOW, source=HONEST) == "stored"
        r = elsewhere(3, 0)
        assert s.put(r.key, r, now=NOW) == "stored"
        # A newer record in a slot the IP already holds replaces it within its quota.
        first = record(10, subkey_in_shard(10, 1, 0), seq=2, name="sr2")
        assert s.put(first.key, first, now=NOW, source=ATTACKER[0]) == "stored"
        assert s.source_bytes()[ATTACKER[0].account] == 2 * size + len(first.raw)


def test_contacts_draw_on_a_per_contact_budget(kind: str, tmp_path: Path) -> None:
    size = len(elsewhere(10, 0).raw)
    quotas = Quotas(max_per_ip=2 * size, max_per_contact=4 * size, max_per_net=100 * size)
    peer = Source.contact(b"\x01" * 20, "192.0.2.9")
    with open_store(kind, tmp_path, quotas) as s:
        stored = 0
        for i in range(10, 20):
            r = elsewhere(i, 0)
            try:
                s.put(r.key, r, now=NOW, source=peer)
                stored += 1
            except QuotaExceeded:
                pass
        assert stored == 4
        assert s.source_bytes() == {peer.account: 4 * size}


def test_a_full_store_evicts_from_the_heaviest_subnet(kind: str, tmp_path: Path) -> None:
    size = len(elsewhere(10, 0).raw)
    quotas = Quotas(max_bytes=10 * size, max_per_ip=100 * size, max_per_net=100 * size)
    with open_store(kind, tmp_path, quotas) as s:
        flood = [elsewhere(i, 0) for i in range(10, 20)]
        for r in flood:
            s.put(r.key, r, now=NOW, source=ATTACKER[0])
        assert s.total_bytes() == 10 * size
        # The full store takes an honest record by evicting from the heaviest /24.
        for i in range(1, 4):
            r = elsewhere(i, 0)
            assert s.put(r.key, r, now=NOW, source=HONEST) == "stored"
        assert s.total_bytes() <= 10 * size
        assert s.source_bytes()[HONEST.account] == sum(len(elsewhere(i, 0).raw) for i in (1, 2, 3))
        # The heaviest /24 itself is refused: it cannot evict others or itself.
        r = elsewhere(30, 0)
        with pytest.raises(QuotaExceeded, match="storage full"):
            s.put(r.key, r, now=NOW, source=ATTACKER[2])


def test_an_eviction_is_rolled_back_when_the_put_is_refused(kind: str, tmp_path: Path) -> None:
    size = len(elsewhere(10, 0).raw)
    big = shard0(3, name="b" * 64)
    assert len(big.raw) > size + size // 8
    quotas = Quotas(
        max_per_key=2, max_bytes=4 * size + size // 8, max_per_ip=100 * size, max_per_net=100 * size
    )
    with open_store(kind, tmp_path, quotas) as s:
        a = [shard0(10), shard0(11)]
        for r in a:
            s.put(r.key, r, now=NOW, source=ATTACKER[0])  # the key is full of one /24
        for i in (1, 2):
            r = elsewhere(i, 0)
            s.put(r.key, r, now=NOW, source=HONEST)
        before = (s.count(), s.total_bytes(), s.source_bytes())
        # Its share of the key lets HONEST evict one of the /24's records there; then the
        # bigger record overflows the store, where HONEST holds the most: refused, and
        # the eviction is undone.
        with pytest.raises(QuotaExceeded, match="storage full"):
            s.put(big.key, big, now=NOW, source=HONEST)
        assert (s.count(), s.total_bytes(), s.source_bytes()) == before
        assert held_by(s, a[0].key) == {r.author for r in a}
        assert s.counters()["evicted"] == 0


def test_decide_put_names_the_victim_and_never_the_node() -> None:
    quotas = Quotas(max_per_key=2)
    r = shard0(1)
    full = Usage(key_count=2, author_count=0, total_bytes=0, key_nets={ATTACKER[0].net: 2})
    assert decide_put(r.key, r, None, full, quotas, now=NOW, source=HONEST) == Evict(
        ATTACKER[0].net, r.key
    )
    # A subnet one record lighter than the heaviest would only swap places: refused.
    close = Usage(key_count=2, author_count=0, total_bytes=0, key_nets={"a": 1, HONEST.net: 1})
    with pytest.raises(QuotaExceeded):
        decide_put(r.key, r, None, close, quotas, now=NOW, source=HONEST)
    mine = Usage(key_count=2, author_count=0, total_bytes=0, key_nets={LOCAL.net: 2})
    with pytest.raises(QuotaExceeded):
        decide_put(r.key, r, None, mine, quotas, now=NOW, source=HONEST)
    assert LOCAL.kind == "local" and LEGACY.kind == "legacy" and CGNAT.kind == "client"


def test_sources_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "records.sqlite"
    with SQLiteRecordStore(path) as s:
        for i in range(10, 14):
            r = elsewhere(i, 0)
            s.put(r.key, r, now=NOW, source=ATTACKER[i % 2])
        r = elsewhere(1, 0)
        s.put(r.key, r, now=NOW)
        ledger = s.source_bytes()
    with SQLiteRecordStore(path) as s:
        assert s.source_bytes() == ledger
        assert set(ledger) == {ATTACKER[0].account, ATTACKER[1].account, LOCAL.account}


_SCHEMA_1 = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE records (
    key BLOB NOT NULL, author BLOB NOT NULL, subkey BLOB NOT NULL, seq INTEGER NOT NULL,
    expires_at INTEGER NOT NULL, size INTEGER NOT NULL, raw BLOB NOT NULL,
    PRIMARY KEY (key, author, subkey)
);
CREATE INDEX records_by_author ON records (author);
CREATE INDEX records_by_expiry ON records (expires_at);
INSERT INTO schema_version (version) VALUES (1);
"""


def test_a_schema_1_file_is_migrated_with_legacy_sources(tmp_path: Path) -> None:
    path = tmp_path / "records.sqlite"
    old = [elsewhere(i, 0) for i in range(10, 13)]
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(_SCHEMA_1)
    for r in old:
        db.execute(
            "INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?)",
            (r.key, r.author, r.subkey, r.seq, r.expires_at, len(r.raw), r.raw),
        )
    db.close()
    size = len(old[0].raw)
    quotas = Quotas(max_bytes=3 * size, max_per_ip=10 * size, max_per_net=10 * size)
    with SQLiteRecordStore(path, quotas=quotas) as s:
        assert {r for _, r in s.items(now=NOW)} == set(old)
        assert s.source_bytes() == {LEGACY.account: 3 * size}
        # Legacy rows are a source like any other: a full store evicts from them.
        r = elsewhere(1, 0)
        assert s.put(r.key, r, now=NOW, source=HONEST) == "stored"
        assert s.count() == 3
    check = sqlite3.connect(path)
    assert check.execute("SELECT version FROM schema_version").fetchall() == [(2,)]
    columns = [row[1] for row in check.execute("PRAGMA table_info(records)")]
    assert columns[-2:] == ["source", "source_net"]
    check.close()


def test_sources_group_by_24_and_48() -> None:
    assert Source.client("203.0.113.9").net == Source.client("203.0.113.200").net
    assert Source.client("203.0.113.9").net != Source.client("203.0.114.9").net
    # An IPv4-mapped IPv6 address is its IPv4 /24; IPv6 groups by /48.
    assert Source.client("::ffff:203.0.113.9").net == "203.0.113.0/24"
    assert Source.client("2001:db8:1:2::5").net == Source.client("2001:db8:1:ffff::1").net
    assert Source.client("2001:db8:1:2::5").net != Source.client("2001:db8:2::5").net
    peer = Source.contact(b"\x01" * 20, "203.0.113.9")
    assert (peer.kind, peer.net) == ("contact", "203.0.113.0/24")
    assert peer.account != Source.client("203.0.113.9").account


def test_a_source_at_its_quota_is_refused_before_any_signature_check(
    kind: str, tmp_path: Path
) -> None:
    size = len(elsewhere(10, 0).raw)
    quotas = Quotas(max_per_ip=2 * size, max_per_net=100 * size)
    with open_store(kind, tmp_path, quotas) as s:
        held = [elsewhere(10, 0), elsewhere(11, 0)]
        for r in held:
            s.put(r.key, r, now=NOW, source=ATTACKER[0])
        other = shard0(12)  # under a key where the attacker holds nothing
        s.put(other.key, other, now=NOW, source=HONEST)
        fresh = shard0(13)
        assert fresh.key == other.key != held[0].key
        # Full, and nothing under the key it could duplicate or replace: sure refusal.
        assert s.refuses_unverified(fresh.key, fresh.raw, ATTACKER[0], now=NOW)
        with pytest.raises(QuotaExceeded):
            s.put(fresh.key, fresh, now=NOW, source=ATTACKER[0])
        # Holding other slots under the key does not help: only its own slot is renewed.
        beside = elsewhere(14, 0)
        assert beside.key == held[0].key
        assert s.refuses_unverified(beside.key, beside.raw, ATTACKER[0], now=NOW)
        assert not s.refuses_unverified(beside.key, b"\xc1 not msgpack", ATTACKER[0], now=NOW)
        # Other sources, a duplicate, or a key where it holds a slot it may renew: the
        # full rules decide (after the signature check).
        assert not s.refuses_unverified(fresh.key, fresh.raw, ATTACKER[1], now=NOW)
        assert not s.refuses_unverified(other.key, other.raw, ATTACKER[0], now=NOW)
        assert s.put(other.key, other, now=NOW, source=ATTACKER[0]) == "duplicate"
        renewed = record(10, subkey_in_shard(10, 1, 0), seq=2, name="sr2")
        assert not s.refuses_unverified(renewed.key, renewed.raw, ATTACKER[0], now=NOW)
        assert s.put(renewed.key, renewed, now=NOW, source=ATTACKER[0]) == "stored"
        # Once its records expired, the source has room again.
        later = NOW + 601
        late = shard0(14, now=later)
        assert not s.refuses_unverified(late.key, late.raw, ATTACKER[0], now=later)
        assert s.put(late.key, late, now=later, source=ATTACKER[0]) == "stored"
