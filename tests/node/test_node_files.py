"""Data-dir files: peers.json, node.json and the API token."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from fairdht.errors import KeyFileError
from fairdht.node import (
    DataDir,
    NodeInfo,
    load_or_create_token,
    load_peers,
    merge_peers,
    read_node_info,
    save_peers,
    write_node_info,
)


def test_peers_round_trip_and_keep_order(tmp_path: Path) -> None:
    path = tmp_path / "peers.json"
    peers = [("127.0.3.1", 4003), ("127.0.2.1", 4002), ("::1", 9)]
    save_peers(path, peers, now=1_700_000_000.7)
    document = json.loads(path.read_text())
    assert document["version"] == 1 and document["saved_at"] == 1_700_000_000
    assert load_peers(path) == peers
    assert [p.name for p in tmp_path.iterdir()] == ["peers.json"]  # no temp file left


def test_damaged_peers_files_give_no_peers(tmp_path: Path) -> None:
    path = tmp_path / "peers.json"
    assert load_peers(path) == []
    for text in ["{", "[]", '{"peers": 3}', "\xff\xfe"]:
        path.write_text(text, encoding="latin-1")
        assert load_peers(path) == []


def test_invalid_peer_entries_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "peers.json"
    entries = [
        {"host": "127.0.2.1", "port": 4000},
        {"host": "example.org", "port": 4000},  # names are not saved, only addresses
        {"host": "127.0.3.1", "port": 0},
        {"host": "127.0.3.1", "port": True},
        {"host": "127.0.3.1"},
        "127.0.4.1:4000",
        {"host": "127.0.2.1", "port": 4000},  # duplicate
        {"host": "127.0.5.1", "port": 65535},
    ]
    path.write_text(json.dumps({"version": 1, "peers": entries}))
    assert load_peers(path) == [("127.0.2.1", 4000), ("127.0.5.1", 65535)]


def test_merge_peers_keeps_first_occurrences_up_to_a_limit() -> None:
    a, b, c = ("127.0.1.1", 1), ("127.0.2.1", 2), ("127.0.3.1", 3)
    assert merge_peers([a, b], [b, c, a]) == [a, b, c]
    assert merge_peers([c], [a, b], limit=2) == [c, a]


def test_node_info_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "node.json"
    assert read_node_info(path) is None
    info = NodeInfo(
        pid=os.getpid(),
        listen=("127.0.4.1", 5000),
        http=("127.0.0.1", 8470),
        node_id="ab" * 20,
        public_key="cd" * 32,
        started_at=1_700_000_000,
    )
    write_node_info(path, info)
    assert read_node_info(path) == info
    assert json.loads(path.read_text())["api_url"] == "http://127.0.0.1:8470"
    path.write_text('{"pid": 1}')
    assert read_node_info(path) is None


def test_token_is_created_0600_once_and_then_reused(tmp_path: Path) -> None:
    data = DataDir(tmp_path / "d")
    data.create()
    assert stat.S_IMODE(data.root.stat().st_mode) == 0o700
    token = load_or_create_token(data.api_token)
    assert len(token) == 64 and int(token, 16) >= 0
    assert stat.S_IMODE(data.api_token.stat().st_mode) == 0o600
    assert load_or_create_token(data.api_token) == token


def test_a_readable_token_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "api-token"
    load_or_create_token(path)
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_or_create_token(path)
