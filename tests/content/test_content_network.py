"""Content publish and fetch over real nodes on loopback, through the CLI."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from loopnet import cluster

from fairdht.cli.main import main
from fairdht.identity.keyfile import write_key
from fairdht.identity.keys import SigningKey
from fairdht.records.envelope import decode_record
from fairdht.records.kinds.chunk import CHUNK_KIND
from fairdht.referee.codehash import code_hash
from fairdht.trust import TrustStore

NET = "demo"


def make_bundle(root: Path) -> Path:
    (root / "rules").mkdir(parents=True)
    (root / "rules" / "arena.py").write_bytes(b"MAX_SPEED = 5\n" * 120)
    (root / "run.sh").write_bytes(b"#!/bin/sh\nexec python3 rules/arena.py\n")
    (root / "run.sh").chmod(0o755)
    (root / "maps").mkdir()
    (root / "maps" / "arena.txt").write_bytes(b"arena 32x32\n")
    return root


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def setup_keys(tmp: Path) -> tuple[Path, SigningKey, Path]:
    publisher = SigningKey.generate()
    key_path = tmp / "publisher.key"
    write_key(key_path, publisher)
    fetcher_dir = tmp / "fetcher"
    return key_path, publisher, fetcher_dir


def test_publish_then_fetch_on_another_node_and_mirror(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = make_bundle(tmp_path / "bundle")
    key_path, publisher, fetcher_dir = setup_keys(tmp_path)
    TrustStore(fetcher_dir / "trust.sqlite").add(NET, "content", publisher.public_key.raw)
    write_key(fetcher_dir / "node.key", SigningKey.generate())
    with cluster(tmp_path / "nodes", 5) as c:
        code, out, err = run(
            [
                "content",
                "publish",
                str(bundle),
                "--key",
                str(key_path),
                "--json",
                *c.bootstrap_args(0),
            ],
            capsys,
        )
        assert code == 0, err
        published = json.loads(out)
        assert published["code_hash"] == code_hash(bundle).hex()
        assert published["signer"] == publisher.public_key.hex()
        out_dir = tmp_path / "fetched"
        code, out, err = run(
            [
                "content",
                "fetch",
                published["code_hash"],
                "--out",
                str(out_dir),
                "--data-dir",
                str(fetcher_dir),
                "--mirror",
                "--json",
                *c.bootstrap_args(4),
            ],
            capsys,
        )
        assert code == 0, err
        fetched = json.loads(out)
        assert fetched["files"] == 3 and fetched["mirrored"] is True
        assert code_hash(out_dir) == code_hash(bundle)
        assert (out_dir / "run.sh").stat().st_mode & 0o100
        # The mirror's chunk copies are on the network beside the publisher's.
        authors = _chunk_authors(c.stores[0].path)
        assert len(authors) == 2


def _chunk_authors(db: Path) -> set[bytes]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT author, raw FROM records").fetchall()
    return {bytes(a) for a, raw in rows if decode_record(bytes(raw)).kind == CHUNK_KIND}


def test_untrusted_signer_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = make_bundle(tmp_path / "bundle")
    key_path, _, fetcher_dir = setup_keys(tmp_path)
    TrustStore(fetcher_dir / "trust.sqlite").add(
        NET, "content", SigningKey.generate().public_key.raw
    )
    with cluster(tmp_path / "nodes", 3) as c:
        code, out, err = run(
            ["content", "publish", str(bundle), "--key", str(key_path), *c.bootstrap_args(0)],
            capsys,
        )
        assert code == 0, err
        out_dir = tmp_path / "fetched"
        code, _, err = run(
            [
                "content",
                "fetch",
                out.strip(),
                "--out",
                str(out_dir),
                "--data-dir",
                str(fetcher_dir),
                *c.bootstrap_args(2),
            ],
            capsys,
        )
        assert code == 1
        assert "outside the content trust role" in err
        assert not out_dir.exists()
        # With no content key trusted at all, fetch refuses before touching the network.
        code, _, err = run(
            [
                "content",
                "fetch",
                out.strip(),
                "--out",
                str(out_dir),
                "--data-dir",
                str(tmp_path / "empty"),
                *c.bootstrap_args(2),
            ],
            capsys,
        )
        assert code == 2 and "trust add" in err


def test_tampered_chunk_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = make_bundle(tmp_path / "bundle")
    key_path, publisher, fetcher_dir = setup_keys(tmp_path)
    TrustStore(fetcher_dir / "trust.sqlite").add(NET, "content", publisher.public_key.raw)
    with cluster(tmp_path / "nodes", 3) as c:
        code, out, err = run(
            ["content", "publish", str(bundle), "--key", str(key_path), *c.bootstrap_args(0)],
            capsys,
        )
        assert code == 0, err
        # Change the file data inside one chunk record (the same chunk) on every replica.
        needle = b"MAX_SPEED = 5"
        with sqlite3.connect(c.stores[0].path) as conn:
            rows = conn.execute("SELECT subkey, raw FROM records").fetchall()
        target = next(bytes(sub) for sub, raw in rows if needle in bytes(raw))
        tampered = 0
        for store in c.stores:
            with sqlite3.connect(store.path) as conn:
                for rowid, raw in conn.execute(
                    "SELECT rowid, raw FROM records WHERE subkey = ?", (target,)
                ).fetchall():
                    bad = bytes(raw).replace(needle, b"MAX_SPEED = 9", 1)
                    conn.execute("UPDATE records SET raw = ? WHERE rowid = ?", (bad, rowid))
                    tampered += 1
        assert tampered == len(c.stores)
        out_dir = tmp_path / "fetched"
        code, _, err = run(
            [
                "content",
                "fetch",
                out.strip(),
                "--out",
                str(out_dir),
                "--data-dir",
                str(fetcher_dir),
                *c.bootstrap_args(1),
            ],
            capsys,
        )
        assert code == 1
        assert "chunk" in err
        assert not out_dir.exists()
