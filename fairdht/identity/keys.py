"""Ed25519 keys (PyNaCl) and node ids derived from them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import nacl.bindings
import nacl.exceptions
import nacl.signing

from fairdht.errors import BadSignature, UsageError

__all__ = [
    "NODE_ID_BYTES",
    "PublicKey",
    "SigningKey",
    "node_id_of",
    "puzzle_bits",
    "verify_detached",
]

NODE_ID_BYTES = 20


def node_id_of(public_key: bytes) -> bytes:
    """Return the 160-bit node id of a public key: BLAKE2b-160 over the key (DESIGN.md)."""
    return hashlib.blake2b(public_key, digest_size=NODE_ID_BYTES).digest()


def puzzle_bits(node_id: bytes) -> int:
    """Return the leading zero bits of BLAKE2b(node id): S/Kademlia's static puzzle (§4.1)."""
    digest = hashlib.blake2b(node_id, digest_size=32).digest()
    value = int.from_bytes(digest, "big")
    return 256 - value.bit_length()


def verify_detached(public_key: bytes, message: bytes, signature: bytes) -> None:
    """Raise ``BadSignature`` unless ``signature`` by ``public_key`` signs ``message``.

    One libsodium call, without building key objects: this is the hot path of record
    validation (docs/BENCHMARKS.md, "Record throughput").
    """
    if len(signature) != 64 or len(public_key) != 32:
        raise BadSignature("signature is not 64 bytes or key is not 32 bytes")
    try:
        nacl.bindings.crypto_sign_open(signature + message, public_key)
    except (
        nacl.exceptions.BadSignatureError,
        nacl.exceptions.ValueError,
        nacl.exceptions.TypeError,
    ):
        raise BadSignature("signature does not verify") from None


@dataclass(frozen=True, slots=True)
class PublicKey:
    """An Ed25519 public key (32 bytes)."""

    raw: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.raw, bytes) or len(self.raw) != 32:
            raise UsageError("a public key is 32 bytes")

    @classmethod
    def from_hex(cls, text: str) -> PublicKey:
        """Parse 64 lowercase or uppercase hex digits."""
        try:
            raw = bytes.fromhex(text.strip())
        except ValueError:
            raise UsageError(f"not a hex public key: {text!r}") from None
        if len(raw) != 32:
            raise UsageError(f"a public key is 64 hex digits, got {len(text.strip())}")
        return cls(raw)

    @property
    def node_id(self) -> bytes:
        """The node id derived from this key."""
        return node_id_of(self.raw)

    def hex(self) -> str:
        """Lowercase hex of the key."""
        return self.raw.hex()

    def verify(self, message: bytes, signature: bytes) -> None:
        """Raise ``BadSignature`` unless ``signature`` signs ``message`` (never returns False)."""
        verify_detached(self.raw, message, signature)


class SigningKey:
    """An Ed25519 signing key. Secret: never log it, never send it."""

    __slots__ = ("_key", "public_key")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != 32:
            raise UsageError("an Ed25519 seed is 32 bytes")
        self._key = nacl.signing.SigningKey(seed)
        self.public_key = PublicKey(bytes(self._key.verify_key))

    @classmethod
    def generate(cls) -> SigningKey:
        """Create a new random key."""
        return cls(bytes(nacl.signing.SigningKey.generate()))

    @property
    def seed(self) -> bytes:
        """The 32-byte secret seed. Secret."""
        return bytes(self._key)

    @property
    def node_id(self) -> bytes:
        """The node id of this key's public half."""
        return self.public_key.node_id

    def sign(self, message: bytes) -> bytes:
        """Return the 64-byte detached signature of ``message``."""
        return self._key.sign(message).signature

    def __repr__(self) -> str:
        return f"SigningKey(public={self.public_key.hex()})"
