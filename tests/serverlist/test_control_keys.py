"""Control records under per-maintainer keys: who a reader asks, and the rotation chain.

Through ``sync_network`` over the in-memory DHT, which records every key a reader asks
for: a reader asks only its trusted maintainers' keys (and the key-set chain), so junk
signed by any number of other keys is never read, and a rotated set's checkpoints are
found through the old set's signed key-set records.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from serverlist_helpers import NET, NOW, MemoryDHT, announce, key

from fairdht.content.blobs import publish_blob
from fairdht.errors import WrongKey
from fairdht.identity import SigningKey
from fairdht.records import derive_key, validate_record
from fairdht.records.kinds.checkpoint import CheckpointBody
from fairdht.serverlist import (
    History,
    checkpoint_key,
    checkpoint_record,
    control_keys,
    keyset_key,
    member_list_of,
    propose_checkpoint,
    rollback_body,
    rollback_key,
    rollback_record,
    shard_keys,
    sync_network,
)
from fairdht.serverlist.policy import Control
from fairdht.trust import TrustStore, sign_rotation

OLD = [key(f"old-{i}") for i in range(3)]
MID = [key(f"mid-{i}") for i in range(3)]
LAST = key("last")


def _raw(keys: list[SigningKey]) -> list[bytes]:
    return [k.public_key.raw for k in keys]


class Reader:
    """A data dir trusting ``keys`` 2-of-n for the checkpoint role of NET."""

    def __init__(self, path: Path, keys: list[SigningKey]) -> None:
        self.trust = TrustStore(path / "trust.sqlite", defaults={})
        for k in keys:
            self.trust.add(NET, "checkpoint", k.public_key.raw)
        self.trust.set_threshold(NET, "checkpoint", 2)
        self.history = History(path / "history.sqlite")

    async def sync(self, dht: MemoryDHT, now: float):  # type: ignore[no-untyped-def]
        return await sync_network(dht.get, NET, history=self.history, trust=self.trust, now=now)


async def _checkpoint(
    dht: MemoryDHT, signers: list[SigningKey], version: int, now: float, view: Path
) -> Control:
    """Checkpoint ``version`` of the list the DHT holds, signed by every one of ``signers``."""
    empty = Reader(view, [])
    listing = (
        await sync_network(
            dht.get, NET, history=empty.history, trust=empty.trust, now=now, record_history=False
        )
    ).listing
    first, chunks = propose_checkpoint(
        signers[0], member_list_of(listing, version), now=now, lifetime=3600
    )
    await publish_blob(dht.put, chunks)
    dht.put_now(first)
    body = first.body_as(CheckpointBody)
    for s in signers[1:]:
        dht.put_now(checkpoint_record(s, NET, body, now=now))
    return Control(
        "checkpoint",
        NET,
        body.version,
        body.root,
        body.members,
        body.count,
        body.expires,
        frozenset(_raw(signers)),
        (first,),
    )


def test_a_reader_never_asks_junk_authors_keys(tmp_path: Path) -> None:
    asyncio.run(_never_asks_junk(tmp_path))


async def _never_asks_junk(tmp_path: Path) -> None:
    dht = MemoryDHT()
    dht.put_now(announce(key("honest"), "10.0.0.1:1"))
    cp = await _checkpoint(dht, OLD[:2], 1, NOW, tmp_path / "view")
    # 1,000 junk keys each sign a checkpoint, a rollback and a key-set record for NET.
    junk = [SigningKey.generate() for _ in range(1000)]
    for j in junk:
        body = rollback_body(cp, version=2, now=NOW, reason="junk")
        dht.put_now(rollback_record(j, NET, body, now=NOW))
        dht.put_now(checkpoint_record(j, NET, cp.records[0].body_as(CheckpointBody), now=NOW))
        dht.put_now(sign_rotation(j, NET, "checkpoint", 1, [j.public_key.raw], 1, now=NOW))
    reader = Reader(tmp_path / "r", OLD)
    dht.asked.clear()
    result = await reader.sync(dht, NOW + 1)
    assert [(c.kind, c.version) for c in result.applied] == [("checkpoint", 1)]
    assert result.ignored == {}
    assert reader.trust.keyset_version(NET, "checkpoint") == 0
    trusted = _raw(OLD)
    expected = (
        set(shard_keys(NET))
        | set(control_keys(NET, trusted))
        | {keyset_key(NET, a) for a in trusted}
    )
    # Besides those keys, only the checkpoint's member-list chunk was read.
    assert expected <= dht.asked and len(dht.asked - expected) == 1
    junk_keys = {f(NET, j.public_key.raw) for j in junk for f in (checkpoint_key, rollback_key)}
    assert junk_keys <= set(dht.data) and not junk_keys & dht.asked


def test_rotation_chain_is_followed_through_each_sets_own_keys(tmp_path: Path) -> None:
    asyncio.run(_rotation_chain(tmp_path))


async def _rotation_chain(tmp_path: Path) -> None:
    dht = MemoryDHT()
    dht.put_now(announce(key("honest"), "10.0.0.1:1"))
    # v1: OLD (2 of 3) hands over to MID; v2: MID (2 of 3) hands over to LAST alone.
    for k in OLD[:2]:
        dht.put_now(sign_rotation(k, NET, "checkpoint", 1, _raw(MID), 2, now=NOW))
    for k in MID[1:]:
        dht.put_now(sign_rotation(k, NET, "checkpoint", 2, _raw([LAST]), 1, now=NOW))
    # LAST's checkpoint (K = 1 of the last set) counts once the chain reaches it.
    await _checkpoint(dht, [LAST], 1, NOW, tmp_path / "view")
    reader = Reader(tmp_path / "r", OLD)
    result = await reader.sync(dht, NOW + 1)
    assert reader.trust.keys(NET, "checkpoint") == {LAST.public_key.raw}
    assert reader.trust.keyset_version(NET, "checkpoint") == 2
    assert reader.trust.threshold(NET, "checkpoint") == 1
    assert [(c.kind, c.version) for c in result.applied] == [("checkpoint", 1)]
    # Every set's key-set records were asked for, one set after the other.
    assert {keyset_key(NET, a) for a in _raw([*OLD, *MID, LAST])} <= dht.asked
    # Controls are read from the set the chain ended with, not the retired ones.
    assert not set(control_keys(NET, _raw([*OLD, *MID]))) & dht.asked


def test_new_keys_cannot_promote_themselves_or_be_found_without_the_old_set(
    tmp_path: Path,
) -> None:
    asyncio.run(_self_promotion(tmp_path))


async def _self_promotion(tmp_path: Path) -> None:
    dht = MemoryDHT()
    dht.put_now(announce(key("honest"), "10.0.0.1:1"))
    # MID sign their own promotion, and one OLD key alone agrees: under threshold.
    for k in [*MID, OLD[0]]:
        dht.put_now(sign_rotation(k, NET, "checkpoint", 1, _raw(MID), 2, now=NOW))
    await _checkpoint(dht, MID[:2], 1, NOW, tmp_path / "view")
    reader = Reader(tmp_path / "r", OLD)
    result = await reader.sync(dht, NOW + 1)
    assert reader.trust.keys(NET, "checkpoint") == frozenset(_raw(OLD))
    assert result.applied == ()
    assert not {keyset_key(NET, a) for a in _raw(MID)} & dht.asked


def test_a_control_record_under_the_old_network_key_is_wrong_key() -> None:
    record = sign_rotation(OLD[0], NET, "checkpoint", 1, _raw(MID), 2, now=NOW)
    assert record.key == keyset_key(NET, OLD[0].public_key.raw)
    for old in ("keysets", "checkpoints", "rollbacks"):
        with pytest.raises(WrongKey):
            validate_record(record.raw, now=NOW, key=derive_key(old, NET.encode()))
