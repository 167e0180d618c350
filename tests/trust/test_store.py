"""The trust store: roles, shipped defaults, thresholds, distrust, rotation versions."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

from fairdht.errors import UsageError
from fairdht.trust import (
    DEMO_NETWORK,
    DefaultSet,
    TrustStore,
    demo_placeholder_key,
    load_defaults,
)

K1, K2, K3 = (bytes([i]) * 32 for i in (1, 2, 3))


@pytest.fixture
def store(tmp_path: Path) -> TrustStore:
    return TrustStore(
        tmp_path / "trust.sqlite", defaults={("net", "checkpoint"): DefaultSet(frozenset({K3}), 1)}
    )


def test_add_remove_and_defaults(store: TrustStore) -> None:
    assert store.keys("net", "checkpoint") == {K3}
    store.add("net", "checkpoint", K1)
    store.add("net", "checkpoint", K2)
    assert store.keys("net", "checkpoint") == {K1, K2, K3}
    store.remove("net", "checkpoint", K3)  # a shipped default can be removed
    store.remove("net", "checkpoint", K1)
    assert store.keys("net", "checkpoint") == {K2}
    assert store.keys("net", "karma") == frozenset()
    assert store.keys("other", "checkpoint") == frozenset()
    store.add("net", "checkpoint", K3)
    assert store.keys("net", "checkpoint") == {K2, K3}


def test_persists_across_instances(tmp_path: Path) -> None:
    path = tmp_path / "d" / "trust.sqlite"
    a = TrustStore(path, defaults={})
    a.add("net", "content", K1)
    a.set_threshold("net", "content", 2)
    a.distrust("net", K2)
    b = TrustStore(path, defaults={})
    assert b.keys("net", "content") == {K1}
    assert b.threshold("net", "content") == 2
    assert b.distrusted("net") == {K2}
    assert b.distrusted("other") == frozenset()
    assert b.networks() == ["net"]


def test_threshold_default_and_bounds(store: TrustStore) -> None:
    assert store.threshold("net", "checkpoint") == 1
    assert store.threshold("x", "karma") == 1
    store.set_threshold("net", "checkpoint", 3)
    assert store.threshold("net", "checkpoint") == 3
    for bad in (0, -1, 256, True):
        with pytest.raises(UsageError):
            store.set_threshold("net", "checkpoint", bad)


@pytest.mark.parametrize(
    ("network", "role", "key"),
    [("Bad Net", "checkpoint", K1), ("net", "admin", K1), ("net", "checkpoint", b"short")],
)
def test_bad_input_is_usage_error(store: TrustStore, network: str, role: str, key: bytes) -> None:
    with pytest.raises(UsageError):
        store.add(network, role, key)


def test_rotation_replaces_set_and_refuses_old_versions(store: TrustStore) -> None:
    store.add("net", "checkpoint", K1)
    assert store.keyset_version("net", "checkpoint") == 0
    store.rotate("net", "checkpoint", frozenset({K1, K2}), 2, version=1)
    assert store.keys("net", "checkpoint") == {K1, K2}
    assert store.threshold("net", "checkpoint") == 2
    assert store.keyset_version("net", "checkpoint") == 1
    with pytest.raises(UsageError):
        store.rotate("net", "checkpoint", frozenset({K3}), 1, version=1)
    with pytest.raises(UsageError):
        store.rotate("net", "checkpoint", frozenset({K3}), 2, version=2)  # K > keys
    assert store.keys("net", "checkpoint") == {K1, K2}


def test_shipped_demo_key_is_the_documented_placeholder(tmp_path: Path) -> None:
    shipped = load_defaults()
    demo = shipped[(DEMO_NETWORK, "checkpoint")]
    assert demo.keys == {demo_placeholder_key().public_key.raw}
    assert demo.threshold == 1
    store = TrustStore(tmp_path / "trust.sqlite")
    assert store.keys(DEMO_NETWORK, "checkpoint") == demo.keys
    doc = json.loads(resources.files("fairdht.trust").joinpath("default_keys.json").read_text())
    assert "PLACEHOLDER" in doc["_comment"]
