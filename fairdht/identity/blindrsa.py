"""RSA blind signatures, RFC 9474 (RSABSSA-SHA384-PSS-Randomized by default).

Hand-written: no maintained Python library implements RFC 9474, so the protocol steps
(Prepare, Blind, BlindSign, Finalize; RFC 9474 §4.1-4.4) and EMSA-PSS encoding
(RFC 8017 §9.1.1) are written here, while key generation and the final RSASSA-PSS
verification use ``cryptography``. Checked byte for byte against the four test vectors
of RFC 9474 Appendix A (tests/karma/test_anon_blindrsa.py).

A signature made this way is an ordinary RSASSA-PSS signature (SHA-384, MGF1-SHA-384,
48-byte salt) over ``prefix ‖ msg``: the signer never sees ``msg`` nor the signature,
so it cannot link a signature it later meets to the request that produced it.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from fairdht.errors import BadSignature, ProtocolError

__all__ = [
    "HASH_LEN",
    "PREFIX_LEN",
    "SALT_LEN",
    "BlindPublicKey",
    "BlindSecretKey",
    "Blinded",
    "blind",
    "blind_sign",
    "emsa_pss_encode",
    "finalize",
    "generate_key",
    "prepare",
    "verify",
]

HASH_LEN = 48  # SHA-384
SALT_LEN = 48  # RFC 9474 §5: the PSS variants use sLen = hLen
PREFIX_LEN = 32  # RFC 9474 §4.1: the randomized Prepare prepends 32 random bytes
MIN_MODULUS_BYTES = 256  # 2048-bit keys at least (RFC 9474 §7.7 asks for 2048 or more)
MAX_MODULUS_BYTES = 512


@dataclass(frozen=True, slots=True)
class BlindPublicKey:
    """An RSA public key (n, e) that blind tokens verify under."""

    n: int
    e: int

    def __post_init__(self) -> None:
        if not MIN_MODULUS_BYTES <= self.modulus_len <= MAX_MODULUS_BYTES or self.n % 2 == 0:
            raise ProtocolError(
                f"RSA modulus must be odd and {MIN_MODULUS_BYTES * 8}..{MAX_MODULUS_BYTES * 8} bits"
            )
        if not 3 <= self.e < self.n or self.e % 2 == 0:
            raise ProtocolError("RSA public exponent must be odd and at least 3")

    @property
    def modulus_len(self) -> int:
        """kLen: the modulus length in bytes."""
        return (self.n.bit_length() + 7) // 8

    @property
    def n_bytes(self) -> bytes:
        """The modulus, big-endian, ``modulus_len`` bytes."""
        return self.n.to_bytes(self.modulus_len, "big")

    def to_cryptography(self) -> rsa.RSAPublicKey:
        """The same key as a ``cryptography`` object."""
        return rsa.RSAPublicNumbers(self.e, self.n).public_key()


@dataclass(frozen=True, slots=True)
class BlindSecretKey:
    """An RSA private key that blind-signs. Secret: never log, publish or serialize it."""

    key: rsa.RSAPrivateKey = field(repr=False)

    @property
    def public_key(self) -> BlindPublicKey:
        """The matching public key."""
        numbers = self.key.public_key().public_numbers()
        return BlindPublicKey(numbers.n, numbers.e)


def generate_key(bits: int = 2048) -> BlindSecretKey:
    """A fresh RSA key (e = 65537) from ``cryptography``."""
    return BlindSecretKey(rsa.generate_private_key(public_exponent=65537, key_size=bits))


def _mgf1_sha384(seed: bytes, length: int) -> bytes:
    # RFC 8017 §B.2.1.
    out = b""
    counter = 0
    while len(out) < length:
        out += hashlib.sha384(seed + counter.to_bytes(4, "big")).digest()
        counter += 1
    return out[:length]


def emsa_pss_encode(msg: bytes, em_bits: int, salt: bytes) -> bytes:
    """EMSA-PSS-ENCODE (RFC 8017 §9.1.1) with SHA-384 and MGF1-SHA-384."""
    em_len = (em_bits + 7) // 8
    m_hash = hashlib.sha384(msg).digest()
    if em_len < HASH_LEN + len(salt) + 2:
        raise ProtocolError("RSA modulus too short for PSS encoding")
    h = hashlib.sha384(b"\x00" * 8 + m_hash + salt).digest()
    db = b"\x00" * (em_len - len(salt) - HASH_LEN - 2) + b"\x01" + salt
    masked = bytearray(
        a ^ b for a, b in zip(db, _mgf1_sha384(h, em_len - HASH_LEN - 1), strict=True)
    )
    masked[0] &= 0xFF >> (8 * em_len - em_bits)
    return bytes(masked) + h + b"\xbc"


def prepare(msg: bytes, *, prefix: bytes | None = None) -> bytes:
    """RFC 9474 §4.1 randomized Prepare: ``prefix ‖ msg`` with 32 fresh random bytes."""
    prefix = secrets.token_bytes(PREFIX_LEN) if prefix is None else prefix
    if len(prefix) != PREFIX_LEN:
        raise ProtocolError(f"message prefix must be {PREFIX_LEN} bytes")
    return prefix + msg


@dataclass(frozen=True, slots=True)
class Blinded:
    """The client's side of one blind signature: what it sends, and the secret to unblind."""

    blinded_msg: bytes
    inv: int = field(repr=False)  # secret: r⁻¹ mod n links the request to the signature


def blind(
    pk: BlindPublicKey,
    prepared_msg: bytes,
    *,
    salt: bytes | None = None,
    r: int | None = None,
    salt_len: int = SALT_LEN,
) -> Blinded:
    """RFC 9474 §4.2 Blind. ``salt`` and ``r`` are drawn fresh unless given (test vectors)."""
    salt = secrets.token_bytes(salt_len) if salt is None else salt
    encoded = emsa_pss_encode(prepared_msg, pk.n.bit_length() - 1, salt)
    m = int.from_bytes(encoded, "big")
    if math.gcd(m, pk.n) != 1:
        raise ProtocolError("invalid input: message not coprime to the modulus")
    while r is None:
        candidate = secrets.randbelow(pk.n - 1) + 1
        if math.gcd(candidate, pk.n) == 1:
            r = candidate
    inv = pow(r, -1, pk.n)
    z = (m * pow(r, pk.e, pk.n)) % pk.n
    return Blinded(z.to_bytes(pk.modulus_len, "big"), inv)


def blind_sign(sk: BlindSecretKey, blinded_msg: bytes) -> bytes:
    """RFC 9474 §4.3 BlindSign, with its check that the result verifies (fault attacks)."""
    pk = sk.public_key
    if len(blinded_msg) != pk.modulus_len:
        raise ProtocolError(f"blinded message must be {pk.modulus_len} bytes")
    m = int.from_bytes(blinded_msg, "big")
    if m >= pk.n:
        raise ProtocolError("blinded message out of range")
    # RSASP1 with the Chinese remainder theorem (RFC 8017 §5.1.2, 2.b): about 3x faster.
    k = sk.key.private_numbers()
    s1, s2 = pow(m % k.p, k.dmp1, k.p), pow(m % k.q, k.dmq1, k.q)
    s = s2 + k.q * ((k.iqmp * (s1 - s2)) % k.p)
    if pow(s, pk.e, pk.n) != m:
        raise ProtocolError("signing failure")
    return s.to_bytes(pk.modulus_len, "big")


def verify(
    pk: BlindPublicKey, prepared_msg: bytes, sig: bytes, *, salt_len: int = SALT_LEN
) -> None:
    """RSASSA-PSS-VERIFY (SHA-384) of ``sig`` over ``prepared_msg``; BadSignature if not."""
    if len(sig) != pk.modulus_len:
        raise BadSignature("blind token has the wrong length for its key")
    try:
        pk.to_cryptography().verify(
            sig,
            prepared_msg,
            padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=salt_len),
            hashes.SHA384(),
        )
    except (InvalidSignature, ValueError):  # ValueError: a key cryptography will not load
        raise BadSignature("blind token does not verify under the referee's key") from None


def finalize(
    pk: BlindPublicKey,
    prepared_msg: bytes,
    blind_sig: bytes,
    inv: int,
    *,
    salt_len: int = SALT_LEN,
) -> bytes:
    """RFC 9474 §4.4 Finalize: unblind and verify; BadSignature if the signer cheated."""
    if len(blind_sig) != pk.modulus_len:
        raise BadSignature("blind signature has the wrong length")
    z = int.from_bytes(blind_sig, "big")
    sig = ((z * inv) % pk.n).to_bytes(pk.modulus_len, "big")
    verify(pk, prepared_msg, sig, salt_len=salt_len)
    return sig
