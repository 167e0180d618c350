"""Hypothesis: random sequences of puts, time steps, sweeps and restarts against a model.

The model is the storage section of docs/protocol.md written as plainly as possible:
it drops expired records first and then applies the slot and quota rules to what is
live. Both stores must answer every put the same way and hold the same live records.
"""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from storage_testkit import NOW, open_store, record, subkey_in_shard

from fairdht.dht.storage import Quotas, RecordStore
from fairdht.errors import Expired, QuotaExceeded, RecordError, StaleRecord
from fairdht.records import Record

# Three authors with two slots under one shared key and one under another shared key.
SLOTS = [
    (i, subkey_in_shard(i, shard, n)) for i in range(3) for shard, n in ((0, 0), (0, 1), (1, 0))
]
POOL = [
    record(i, sub, seq, ttl=ttl, name=name, withdrawn=name == "")
    for (i, sub), seq, name, ttl in itertools.product(
        SLOTS, (1, 2, 3), ("alpha", "a longer name", ""), (30, 90)
    )
]
KEYS = sorted({r.key for r in POOL})
QUOTAS = Quotas(max_per_key=4, max_per_author=2, max_bytes=4 * len(POOL[0].raw))

Slot = tuple[bytes, bytes, bytes]


class Model:
    """The rules, stated over live records only."""

    def __init__(self, quotas: Quotas) -> None:
        self.quotas = quotas
        self.slots: dict[Slot, Record] = {}

    def _drop_expired(self, now: float) -> None:
        self.slots = {s: r for s, r in self.slots.items() if r.expires_at > now}

    def put(self, key: bytes, r: Record, now: float) -> str:
        if r.expires_at <= now:
            raise Expired("dead")
        self._drop_expired(now)
        slot = (key, r.author, r.subkey)
        held = self.slots.get(slot)
        if held is not None:
            if held.raw == r.raw:
                return "duplicate"
            if r.seq <= held.seq:
                raise StaleRecord("stale")
        else:
            if sum(1 for k, _, _ in self.slots if k == key) >= self.quotas.max_per_key:
                raise QuotaExceeded("key")
            if sum(1 for _, a, _ in self.slots if a == r.author) >= self.quotas.max_per_author:
                raise QuotaExceeded("author")
        size = sum(len(x.raw) for x in self.slots.values())
        if size - (len(held.raw) if held else 0) + len(r.raw) > self.quotas.max_bytes:
            raise QuotaExceeded("bytes")
        self.slots[slot] = r
        return "stored"

    def get(self, key: bytes, now: float, include_withdrawn: bool) -> list[Record]:
        return [
            r
            for (k, a, s), r in sorted(self.slots.items())
            if k == key and r.expires_at > now and (include_withdrawn or not r.withdrawn)
        ]


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.integers(0, len(POOL) - 1)),
        st.tuples(st.just("tick"), st.integers(1, 40)),
        st.tuples(st.just("expire"), st.just(0)),
        st.tuples(st.just("reopen"), st.just(0)),
    ),
    max_size=40,
)


def outcome(store: RecordStore, key: bytes, r: Record, now: float) -> str:
    try:
        return store.put(key, r, now=now)
    except RecordError as exc:
        return type(exc).__name__


def model_outcome(model: Model, key: bytes, r: Record, now: float) -> str:
    try:
        return model.put(key, r, now)
    except RecordError as exc:
        return type(exc).__name__


def run(kind: str, ops: list[tuple[str, int]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(kind, Path(tmp), QUOTAS, synchronous="normal")
        model = Model(QUOTAS)
        now = float(NOW)
        try:
            for op, arg in ops:
                if op == "put":
                    r = POOL[arg]
                    assert outcome(store, r.key, r, now) == model_outcome(model, r.key, r, now)
                elif op == "tick":
                    now += arg
                elif op == "expire":
                    store.expire(now)
                    model._drop_expired(now)
                    assert store.count() == len(model.slots)
                    assert store.total_bytes() == sum(len(r.raw) for r in model.slots.values())
                elif kind == "sqlite":
                    store.close()
                    store = open_store(kind, Path(tmp), QUOTAS, synchronous="normal")
                for key in KEYS:
                    for withdrawn in (True, False):
                        assert store.get(key, now=now, include_withdrawn=withdrawn) == model.get(
                            key, now, withdrawn
                        )
        finally:
            store.close()


@settings(max_examples=300, deadline=None)
@given(OPS)
def test_memory_store_follows_the_model(ops: list[tuple[str, int]]) -> None:
    run("memory", ops)


@settings(max_examples=100, deadline=None)
@given(OPS)
def test_sqlite_store_follows_the_model(ops: list[tuple[str, int]]) -> None:
    run("sqlite", ops)


def test_the_pool_exercises_every_rule() -> None:
    # A fixed sequence that reaches stored, duplicate, stale, quota and expired.
    a1, a2 = SLOTS[0], SLOTS[1]
    first = next(r for r in POOL if r.subkey == a1[1] and r.seq == 1 and r.expires_at == NOW + 90)
    results = []
    model = Model(QUOTAS)
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store("sqlite", Path(tmp), QUOTAS, synchronous="normal")
        same_seq = next(r for r in POOL if r.slot == first.slot and r.seq == 1 and r != first)
        third = next(r for r in POOL if r.author == first.author and r.subkey == SLOTS[2][1])
        second = next(r for r in POOL if r.subkey == a2[1])
        for r, now in [(first, NOW), (first, NOW), (same_seq, NOW), (second, NOW), (third, NOW)]:
            results.append(outcome(store, r.key, r, now))
            assert results[-1] == model_outcome(model, r.key, r, now)
        results.append(outcome(store, first.key, first, NOW + 90))
        store.close()
    assert results == [
        "stored",
        "duplicate",
        "StaleRecord",
        "stored",
        "QuotaExceeded",
        "Expired",
    ]
