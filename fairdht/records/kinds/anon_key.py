"""Kind ``anon_key``: a referee's published RSA blind-signing key for one period and polarity.

Anonymous match votes (docs/karma.md, "Anonymous match votes") carry a token: an RFC 9474
blind signature by the referee of the match. A reader counts a token only under the key
its referee published here for the vote's period and the polarity of the vote's action,
and only under the one key that slot holds now, so a referee cannot tag players by
signing each one's token under a key of its own (every other key's tokens stop counting).

Stored under a DHT key derived from (network, referee), so a reader finds every blind key
of a referee with one lookup; subkey ``u32 period ‖ polarity`` (``+`` or ``-``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

from fairdht.errors import BadBody, ProtocolError
from fairdht.identity.blindrsa import MAX_MODULUS_BYTES, MIN_MODULUS_BYTES, BlindPublicKey
from fairdht.records.keys import derive_key
from fairdht.records.registry import KindSpec, register_kind
from fairdht.records.schema import expect_map, get_bytes, get_int

__all__ = [
    "ANON_KEY_KIND",
    "ANON_KEY_MAX_TTL",
    "ANON_PERIOD",
    "POLARITIES",
    "AnonKey",
    "anon_key_key",
    "anon_key_subkey",
    "period_of",
    "split_anon_key_subkey",
]

ANON_KEY_KIND = "anon_key"
# One period is one UTC day: a vote names its day, never its match (docs/karma.md).
ANON_PERIOD = 86400
# A key must outlive every vote it backs: votes are cast during the period or the next
# one and live at most 30 days, so 32 days after the period's start covers them.
ANON_KEY_MAX_TTL = 32 * 86400
POLARITIES = ("+", "-")


def period_of(now: float) -> int:
    """The period (UTC day number) that ``now`` falls in."""
    return int(now) // ANON_PERIOD


def anon_key_subkey(period: int, polarity: str) -> bytes:
    """``u32 period ‖ polarity``: one slot per (period, polarity) per referee."""
    if polarity not in POLARITIES or not 0 <= period < 2**32:
        raise BadBody("anon key slot needs a period and a polarity '+' or '-'")
    return period.to_bytes(4, "big") + polarity.encode()


def split_anon_key_subkey(subkey: bytes) -> tuple[int, str]:
    """(period, polarity) of an ``anon_key`` subkey; BadBody if it is not one."""
    if len(subkey) != 5 or subkey[4:] not in (b"+", b"-"):
        raise BadBody("anon key subkey must be u32 period and '+' or '-'")
    return int.from_bytes(subkey[:4], "big"), subkey[4:].decode()


def anon_key_key(network: str, referee: bytes) -> bytes:
    """The DHT key of every blind key ``referee`` published on ``network``."""
    return derive_key("anon-key", network.encode(), referee)


@dataclass(frozen=True, slots=True)
class AnonKey:
    """An RSA public key (modulus and exponent) for RSABSSA-SHA384-PSS-Randomized tokens."""

    n: bytes
    e: int

    def __post_init__(self) -> None:
        if self.n[:1] == b"\x00":
            raise BadBody("anon key modulus must have no leading zero byte")
        try:
            self.public_key()
        except ProtocolError as exc:
            raise BadBody(f"anon key: {exc}") from None

    def public_key(self) -> BlindPublicKey:
        """The key as a blind-signature public key."""
        return BlindPublicKey(int.from_bytes(self.n, "big"), self.e)

    def to_wire(self) -> dict[str, Any]:
        """The canonical map."""
        return {"e": self.e, "n": self.n}

    @classmethod
    def from_wire(cls, obj: Any) -> Self:
        """Parse an untrusted map."""
        m = expect_map(obj, {"e", "n"})
        n = get_bytes(m, "n", max_len=MAX_MODULUS_BYTES)
        if len(n) < MIN_MODULUS_BYTES:
            raise BadBody(f"anon key modulus must be at least {MIN_MODULUS_BYTES} bytes")
        return cls(n=n, e=get_int(m, "e", lo=3, hi=2**32 - 1))


def _check(record: Any) -> None:
    split_anon_key_subkey(record.subkey)


register_kind(
    KindSpec(
        name=ANON_KEY_KIND,
        body_type=AnonKey,
        max_ttl=ANON_KEY_MAX_TTL,
        key_tag="anon-key",
        key_parts=lambda network, author, subkey: (network.encode(), author),
        subkey_len=(5, 5),
        check=_check,
    )
)
