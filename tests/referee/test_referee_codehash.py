"""The code hash: a pinned known-answer vector, order independence, refusals."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from fairdht.cli.main import main
from fairdht.errors import UsageError
from fairdht.referee.codehash import (
    CODE_HASH_DOMAIN,
    bundle_files,
    code_hash,
    code_hash_of_files,
    parse_code_hash,
)

# docs/referee.md, "Code hash": the known-answer vector.
KAV_HEX = "344f146df2eb43fb244e868d19cd74ebdf5acee8c8acf61d3dbccf6740b9c0b6"
EMPTY_HEX = "d6ebd9ef009b4fd0e9dc7e93c9a7d970f8cbf4961cbd32ab9c22f8cda97fe378"
KAV_FILES = [
    ("README", False, b"hello\n"),
    ("bin/run", True, b"#!/bin/sh\necho fair\n"),
    ("data/map.txt", False, b"arena 32x32\n"),
]


def write_tree(root: Path, files: list[tuple[str, bool, bytes]]) -> Path:
    """Write ``files`` under ``root`` in the given order, with their executable bits."""
    for rel, executable, content in files:
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        target.chmod(0o755 if executable else 0o644)
    return root


def test_known_answer_vector(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "kav", KAV_FILES)
    assert code_hash(root).hex() == KAV_HEX
    assert code_hash_of_files(KAV_FILES).hex() == KAV_HEX
    assert code_hash_of_files([]).hex() == EMPTY_HEX


def test_framing_matches_the_documented_layout(tmp_path: Path) -> None:
    # An independent transcription of docs/referee.md's framing.
    h = hashlib.blake2b(digest_size=32)
    h.update(CODE_HASH_DOMAIN)
    for rel, executable, content in KAV_FILES:
        raw = rel.encode()
        h.update(len(raw).to_bytes(8, "big") + raw + bytes([int(executable)]))
        h.update(len(content).to_bytes(8, "big") + content)
    assert h.hexdigest() == KAV_HEX


def test_stable_across_write_order_and_empty_dirs(tmp_path: Path) -> None:
    a = write_tree(tmp_path / "a", KAV_FILES)
    b = write_tree(tmp_path / "b", list(reversed(KAV_FILES)))
    (b / "empty" / "deeper").mkdir(parents=True)
    os.utime(b / "README", (1, 1))
    assert code_hash(a) == code_hash(b)


def test_every_framed_field_changes_the_hash(tmp_path: Path) -> None:
    base = code_hash_of_files(KAV_FILES)
    variants = [
        [("README", True, b"hello\n"), *KAV_FILES[1:]],  # executable bit
        [("README2", False, b"hello\n"), *KAV_FILES[1:]],  # path
        [("README", False, b"hello!\n"), *KAV_FILES[1:]],  # content
        KAV_FILES[1:],  # a file less
        # moving bytes between path and content must not collide (length prefixes)
        [("READMEh", False, b"ello\n"), *KAV_FILES[1:]],
    ]
    hashes = {code_hash_of_files(v) for v in variants}
    assert base not in hashes
    assert len(hashes) == len(variants)


def test_paths_sort_bytewise_not_by_str(tmp_path: Path) -> None:
    root = write_tree(
        tmp_path / "t", [("a.txt", False, b"1"), ("a/b", False, b"2"), ("Z", False, b"3")]
    )
    assert [f.path for f in bundle_files(root)] == ["Z", "a.txt", "a/b"]


def test_single_file_is_named_by_its_base_name(tmp_path: Path) -> None:
    one = tmp_path / "game.py"
    one.write_bytes(b"print('fair')\n")
    one.chmod(0o644)
    tree = write_tree(tmp_path / "dir", [("game.py", False, b"print('fair')\n")])
    assert code_hash(one) == code_hash(tree)


def test_symlink_is_refused(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "s", KAV_FILES)
    (root / "link").symlink_to(root / "README")
    with pytest.raises(UsageError, match="symlink"):
        code_hash(root)
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "link").unlink()
    (root / "escape").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UsageError, match="symlink"):
        code_hash(root)


def test_fifo_and_missing_path_are_refused(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "f", KAV_FILES)
    os.mkfifo(root / "pipe")
    with pytest.raises(UsageError, match="not a regular file"):
        code_hash(root)
    with pytest.raises(UsageError, match="does not exist"):
        code_hash(tmp_path / "nope")


def test_paths_outside_the_tree_are_refused() -> None:
    for bad in ["../etc/passwd", "/abs", "a//b", "a/./b", "", "a/"]:
        with pytest.raises(UsageError):
            code_hash_of_files([(bad, False, b"")])
    with pytest.raises(UsageError, match="twice"):
        code_hash_of_files([("a", False, b""), ("a", True, b"")])


def test_parse_code_hash() -> None:
    assert parse_code_hash(KAV_HEX.upper()) == bytes.fromhex(KAV_HEX)
    for bad in ["zz", KAV_HEX[:-2], KAV_HEX + "00"]:
        with pytest.raises(UsageError):
            parse_code_hash(bad)


def test_cli_codehash(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_tree(tmp_path / "kav", KAV_FILES)
    assert main(["codehash", str(root)]) == 0
    assert capsys.readouterr().out == f"{KAV_HEX}\n"
    assert main(["codehash", str(root), "--json"]) == 0
    out = capsys.readouterr().out
    assert f'"code_hash": "{KAV_HEX}"' in out
    assert '"files": 3' in out
    (root / "link").symlink_to(root / "README")
    assert main(["codehash", str(root)]) == 2
    assert "symlink" in capsys.readouterr().err
    shutil.rmtree(root)
