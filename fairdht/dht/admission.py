"""Sans-IO admission rules against hostile peers (issue 9): ids, subnets, tokens, rates.

- Key-bound ids (S/Kademlia §4.1): a contact proves its key by signing a verifier's
  fresh nonce bound to both ids and the address it was reached at (``challenge_message``);
  a static puzzle makes choosing an id expensive (``passes_puzzle``, ``generate_key``).
- IP diversity (libp2p kad-dht's peer-diversity filter): ``subnet_of`` groups IPv4
  addresses by /24 and IPv6 by /48.
- Address validation (RFC 9000 §8.1, BEP 5 tokens): ``TokenMint`` hands out a short
  MAC of the requester's address under a rotating secret; a requester that echoes it
  has proven it receives datagrams there.
- Per-source rate limits (OpenDHT's per-IP quotas, per host and per subnet here) live in
  ``fairdht.dht.ratelimit``; ``RateLimiter`` is re-exported from there.

Every function here takes time as ``now`` (seconds of the caller's clock).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import os
from typing import Final

from fairdht.dht.ratelimit import RateLimiter
from fairdht.identity import SigningKey, puzzle_bits

__all__ = [
    "CHALLENGE_DOMAIN",
    "NONCE_BYTES",
    "TOKEN_BYTES",
    "TOKEN_PROOF_DOMAIN",
    "RateLimiter",
    "TokenMint",
    "challenge_message",
    "generate_key",
    "passes_puzzle",
    "subnet_of",
    "token_proof_message",
]

NONCE_BYTES: Final = 16
TOKEN_BYTES: Final = 8
# Domain separation: a challenge signature can never be mistaken for a record's.
CHALLENGE_DOMAIN: Final = b"fairdht/dht/ping/v1\x00"
TOKEN_PROOF_DOMAIN: Final = b"fairdht/dht/token-proof/v1\x00"


def passes_puzzle(node_id: bytes, bits: int) -> bool:
    """True if BLAKE2b-256(node_id) has at least ``bits`` leading zero bits (S/Kademlia §4.1)."""
    return bits <= 0 or puzzle_bits(node_id) >= bits


def generate_key(bits: int, *, max_tries: int = 1 << 30) -> SigningKey:
    """A fresh random key whose node id passes a ``bits``-bit static puzzle.

    Expected cost is 2**bits key generations (about 15,000 a second on the reference
    machine, so 14 bits take about a second); ValueError after ``max_tries``.
    """
    for _ in range(max_tries):
        key = SigningKey.generate()
        if passes_puzzle(key.node_id, bits):
            return key
    raise ValueError(f"no key passing a {bits}-bit puzzle in {max_tries} tries")


def _address_bytes(ip: str, port: int) -> bytes:
    return ip.encode() + b"\x00" + port.to_bytes(2, "big")


def challenge_message(
    nonce: bytes, verifier_id: bytes, responder_id: bytes, ip: str, port: int
) -> bytes:
    """The bytes a responder signs to answer a ping challenge.

    ``domain ‖ nonce(16) ‖ u8(len verifier_id) ‖ verifier_id ‖ responder_id(20) ‖
    ip (UTF-8) ‖ 0x00 ‖ u16(port)``: fresh (the verifier's nonce), bound to both ids
    (a signature for one verifier is useless to another) and to the address the
    verifier sent the challenge to (S/Kademlia §4.1's signed messages, BEP 42's
    address binding).
    """
    return (
        CHALLENGE_DOMAIN
        + nonce
        + bytes([len(verifier_id)])
        + verifier_id
        + responder_id
        + _address_bytes(ip, port)
    )


def token_proof_message(token: bytes, sender_id: bytes) -> bytes:
    """The bytes a node signs to prove its id where it echoes a token (a STORE's or a
    ping's proof, docs/protocol.md "Address validation").

    ``domain ‖ token(8) ‖ sender_id(20)``. The token is the receiver's own, minted for
    the sender's address under the receiver's secret and handed only to that address
    (BEP 5), so a signature over it answers a challenge the receiver sent there: the
    key's holder receives at the address (S/Kademlia §4.1), without the ping round
    trip. No other receiver, address or period has the same token.
    """
    return TOKEN_PROOF_DOMAIN + token + sender_id


# Admission checks compare a newcomer with every contact of its bucket and table, so
# this runs thousands of times per lookup on the same few hundred addresses.
@functools.lru_cache(maxsize=65536)
def subnet_of(ip: str) -> str:
    """The diversity group of an IP: its /24 for IPv4 (and IPv4-mapped IPv6), /48 for IPv6."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if isinstance(addr, ipaddress.IPv4Address):
        return str(ipaddress.ip_network(f"{addr}/24", strict=False))
    return str(ipaddress.ip_network(f"{addr}/48", strict=False))


class TokenMint:
    """BEP 5-style address tokens: MAC(secret, ip ‖ port), secrets rotating every ``period``.

    A token minted in the current or the previous period is valid, so a token lives
    between one and two periods. Secrets are random per node and never leave it.
    Tokens of the current period are remembered per address (at most ``memory``; the
    memory empties when full and at each rotation): every request checks one and every
    reply carries one, for the same few hundred addresses.
    """

    def __init__(self, period: float, *, memory: int = 4096) -> None:
        if period <= 0:
            raise ValueError("token period must be positive")
        self.period = period
        self._epoch: int | None = None
        self._current = os.urandom(32)
        self._previous = os.urandom(32)
        self._memory = memory
        self._minted: dict[tuple[str, int], bytes] = {}

    def _rotate(self, now: float) -> None:
        epoch = int(now // self.period)
        if self._epoch is None:
            self._epoch = epoch
        elif epoch != self._epoch:
            # More than one period passed: the old secret is gone as well.
            self._previous = self._current if epoch == self._epoch + 1 else os.urandom(32)
            self._current = os.urandom(32)
            self._epoch = epoch
            self._minted.clear()

    @staticmethod
    def _mac(secret: bytes, ip: str, port: int) -> bytes:
        return hashlib.blake2b(
            _address_bytes(ip, port), key=secret, digest_size=TOKEN_BYTES
        ).digest()

    def mint(self, ip: str, port: int, now: float) -> bytes:
        """The token for a requester at ``ip``:``port``."""
        self._rotate(now)
        minted = self._minted
        token = minted.get((ip, port))
        if token is None:
            token = self._mac(self._current, ip, port)
            if len(minted) >= self._memory:
                minted.clear()  # a spray of addresses costs a MAC each, never memory
            minted[(ip, port)] = token
        return token

    def check(self, token: bytes, ip: str, port: int, now: float) -> bool:
        """True if ``token`` was minted for ``ip``:``port`` in this or the previous period."""
        if len(token) != TOKEN_BYTES:
            return False
        if hmac.compare_digest(token, self.mint(ip, port, now)):
            return True
        return hmac.compare_digest(token, self._mac(self._previous, ip, port))
