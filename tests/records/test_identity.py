"""Keys, node ids and key files."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from fairdht.errors import BadSignature, KeyFileError, UsageError
from fairdht.identity import (
    PublicKey,
    SigningKey,
    load_key,
    load_or_create_key,
    node_id_of,
    write_key,
)


def test_node_id_is_blake2b_160_of_the_public_key() -> None:
    key = SigningKey.generate()
    assert key.node_id == hashlib.blake2b(key.public_key.raw, digest_size=20).digest()
    assert node_id_of(key.public_key.raw) == key.node_id


def test_verify_raises_never_returns_false() -> None:
    key = SigningKey.generate()
    sig = key.sign(b"msg")
    key.public_key.verify(b"msg", sig)
    with pytest.raises(BadSignature):
        key.public_key.verify(b"other", sig)
    with pytest.raises(BadSignature):
        key.public_key.verify(b"msg", sig[:10])


def test_public_key_hex_parsing() -> None:
    key = SigningKey.generate().public_key
    assert PublicKey.from_hex(key.hex()) == key
    for bad in ["zz", "00" * 31, ""]:
        with pytest.raises(UsageError):
            PublicKey.from_hex(bad)


def test_key_file_is_0600_and_roundtrips(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "node.key"
    key = load_or_create_key(path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert load_key(path).seed == key.seed
    assert load_or_create_key(path).seed == key.seed
    assert key.seed.hex() not in repr(key)


def test_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    write_key(path, SigningKey.generate())
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_key(path)


def test_key_file_is_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    write_key(path, SigningKey.generate())
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        write_key(path, SigningKey.generate())


@pytest.mark.parametrize(
    "text", ["", "hello", "fairdht-ed25519-seed v1\nxyz\n", "fairdht-ed25519-seed v1\n00\n"]
)
def test_garbage_key_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "node.key"
    path.write_text(text)
    os.chmod(path, 0o600)
    with pytest.raises(KeyFileError):
        load_key(path)


def test_missing_key_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="does not exist"):
        load_key(tmp_path / "none.key")
