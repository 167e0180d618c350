"""Hypothesis: random puts from random sources, ticks, sweeps and reopens, run on the
in-memory and the SQLite store in lockstep.

Both stores must answer every put alike and hold the same records charged to the same
sources (the policy lives once, in ``decide_put``), and the policy's promises hold
after every step: the ledger adds up, no source is over its quota, no key over its
count, the node's own live records are never evicted, and the check made before a
signature (``refuses_unverified``) never refuses what ``put`` would store.
"""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from storage_testkit import NOW, open_store, record, subkey_in_shard

from fairdht.dht.storage import LOCAL, Quotas, RecordStore, Source
from fairdht.errors import RecordError
from fairdht.records import Record

# Five authors, two slots each under one shared key and one under another.
SLOTS = [
    (i, subkey_in_shard(i, shard, n)) for i in range(5) for shard, n in ((0, 0), (0, 1), (1, 0))
]
POOL = [
    record(i, sub, seq, ttl=ttl, name=name)
    for (i, sub), seq, name, ttl in itertools.product(
        SLOTS, (1, 2), ("alpha", "a much longer server name"), (30, 90)
    )
]
KEYS = sorted({r.key for r in POOL})
SIZE = max(len(r.raw) for r in POOL)
SOURCES = [
    Source.client("203.0.113.1"),
    Source.client("203.0.113.2"),  # the same /24 as the first
    Source.client("198.51.100.1"),
    Source.contact(b"\x07" * 20, "192.0.2.1"),
    LOCAL,
]
QUOTAS = Quotas(
    max_per_key=4,
    max_per_author=3,
    max_bytes=7 * SIZE,
    max_per_ip=3 * SIZE,
    max_per_contact=4 * SIZE,
    max_per_net=5 * SIZE,
)

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.integers(0, len(POOL) - 1), st.integers(0, len(SOURCES) - 1)),
        st.tuples(st.just("tick"), st.integers(1, 40), st.just(0)),
        st.tuples(st.just("expire"), st.just(0), st.just(0)),
        st.tuples(st.just("reopen"), st.just(0), st.just(0)),
    ),
    max_size=60,
)


def outcome(store: RecordStore, r: Record, now: float, source: Source) -> str:
    try:
        return store.put(r.key, r, now=now, source=source)
    except RecordError as exc:
        return type(exc).__name__


def check_promises(store: RecordStore, now: float) -> None:
    ledger = store.source_bytes()
    assert sum(ledger.values()) == store.total_bytes() <= QUOTAS.max_bytes
    for account, held in ledger.items():
        if account.startswith("ip:"):
            assert held <= QUOTAS.max_per_ip
        elif account.startswith("node:"):
            assert held <= QUOTAS.max_per_contact
    for key in KEYS:
        assert len(store.get(key, now=now)) <= QUOTAS.max_per_key


@settings(max_examples=150, deadline=None)
@given(OPS)
def test_both_stores_apply_the_source_policy_alike(ops: list[tuple[str, int, int]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        mem = open_store("memory", Path(tmp) / "m", QUOTAS)
        sql = open_store("sqlite", Path(tmp) / "s", QUOTAS, synchronous="normal")
        now = float(NOW)
        # The node's own records: each must stay until it expires or its slot is rewritten.
        own: dict[tuple[bytes, bytes, bytes], Record] = {}
        try:
            for op, arg, src in ops:
                if op == "put":
                    r, source = POOL[arg], SOURCES[src]
                    # The check before the signature is never wrong about a refusal.
                    sure = mem.refuses_unverified(r.key, r.raw, source, now=now)
                    assert sql.refuses_unverified(r.key, r.raw, source, now=now) == sure
                    answer = outcome(mem, r, now, source)
                    assert outcome(sql, r, now, source) == answer
                    assert answer not in ("stored", "duplicate") or not sure
                    slot = (r.key, r.author, r.subkey)
                    if answer == "stored":
                        if source == LOCAL:
                            own[slot] = r
                        else:
                            own.pop(slot, None)
                elif op == "tick":
                    now += arg
                elif op == "expire":
                    assert mem.expire(now) == sql.expire(now)
                else:
                    sql.close()
                    sql = open_store("sqlite", Path(tmp) / "s", QUOTAS, synchronous="normal")
                for key in KEYS:
                    assert mem.get(key, now=now) == sql.get(key, now=now)
                assert mem.source_bytes() == sql.source_bytes()
                assert (mem.count(), mem.total_bytes()) == (sql.count(), sql.total_bytes())
                check_promises(mem, now)
                for (key, _, _), r in own.items():
                    if r.expires_at > now:
                        assert r in mem.get(key, now=now)
        finally:
            mem.close()
            sql.close()
