"""Stateless challenges: a keyed hash of the address and a time bucket (SYN-cookie style).

A master must not keep state for every heartbeat a spoofer sends (dpmaster keeps a
slot per heartbeat for a few seconds); a keyed BLAKE2b of (host, port, bucket) needs
none, and a reply carrying it proves the sender receives datagrams at that address.
A challenge is valid in its bucket and the next one (``2 * bucket`` seconds at most).
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["ALPHABET", "Challenger"]

# Letters and digits only: inside dpmaster's allowed set and safe in every infostring.
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


class Challenger:
    """Makes and checks challenges for one gateway secret (secret: keep it private)."""

    def __init__(self, secret: bytes, *, bucket: float = 30.0) -> None:
        if len(secret) < 16:
            raise ValueError("a challenge secret is at least 16 bytes")
        self._secret = secret
        self.bucket = bucket

    def _digest(self, purpose: str, host: str, port: int, epoch: int) -> bytes:
        msg = f"{purpose}|{host}|{port}|{epoch}".encode()
        return hashlib.blake2b(msg, key=self._secret[:64], digest_size=32).digest()

    def text(self, purpose: str, host: str, port: int, now: float, length: int = 12) -> str:
        """A challenge of ``length`` characters of ``ALPHABET`` (``purpose`` separates uses)."""
        digest = self._digest(purpose, host, port, int(now // self.bucket))
        return "".join(ALPHABET[b % len(ALPHABET)] for b in digest[:length])

    def check_text(self, purpose: str, host: str, port: int, challenge: str, now: float) -> bool:
        """True when ``challenge`` was made for this address in this or the last bucket."""
        if not 8 <= len(challenge) <= 32:
            return False
        epoch = int(now // self.bucket)
        for e in (epoch, epoch - 1):
            digest = self._digest(purpose, host, port, e)
            want = "".join(ALPHABET[b % len(ALPHABET)] for b in digest[: len(challenge)])
            # Bytes: compare_digest refuses str with non-ASCII characters (a peer's bytes).
            if hmac.compare_digest(want.encode(), challenge.encode("utf-8", "surrogatepass")):
                return True
        return False

    def raw(self, purpose: str, host: str, port: int, now: float, length: int = 8) -> bytes:
        """A binary challenge of ``length`` bytes."""
        return self._digest(purpose, host, port, int(now // self.bucket))[:length]

    def check_raw(self, purpose: str, host: str, port: int, challenge: bytes, now: float) -> bool:
        """True when binary ``challenge`` was made for this address recently."""
        epoch = int(now // self.bucket)
        return (
            any(
                hmac.compare_digest(
                    self._digest(purpose, host, port, e)[: len(challenge)], challenge
                )
                for e in (epoch, epoch - 1)
            )
            and len(challenge) >= 8
        )
