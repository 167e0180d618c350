"""The one registry of record kinds: body schema, max TTL and DHT-key derivation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, Self, runtime_checkable

from fairdht.errors import UnknownKind
from fairdht.records.keys import derive_key

__all__ = ["Body", "KindSpec", "all_kinds", "kind_spec", "register_kind"]


@runtime_checkable
class Body(Protocol):
    """A typed record body: a frozen value that maps to and from a canonical msgpack map."""

    def to_wire(self) -> dict[str, Any]:
        """The map that is encoded (canonically) into the record."""
        ...

    @classmethod
    def from_wire(cls, obj: Any) -> Self:
        """Parse an untrusted decoded map; raise ``BadBody``, nothing else."""
        ...


@dataclass(frozen=True, slots=True)
class KindSpec:
    """Everything the records layer knows about one kind.

    ``key_parts(network, author, subkey)`` returns the parts hashed with ``key_tag``
    into the DHT key: the key depends only on envelope fields, so a withdrawal
    (which has no body) derives the same key as the record it withdraws.
    ``check(record)`` runs cross-field rules (e.g. subkey equals a body field) and
    raises ``BadBody``.

    ``wire_struct`` and ``from_struct`` give a kind the decoder's fast path
    (envelope.py): a msgspec Struct whose fields are the body map's keys in canonical
    (sorted) order with the body's limits as constraints, and a function that makes the
    body from a decoded Struct, running every rule ``from_wire`` runs that the Struct
    does not state (raising ``BadBody``). Only a ``WIRE_EXACT`` body may have one.
    ``small_key_space`` says ``key_parts`` takes few values (the server list's shards),
    so the derived keys are memoised.
    """

    name: str
    body_type: type[Any]
    max_ttl: int
    key_tag: str
    key_parts: Callable[[str, bytes, bytes], tuple[bytes, ...]]
    subkey_len: tuple[int, int] = (0, 64)
    check: Callable[[Any], None] | None = None
    wire_struct: type[Any] | None = None
    from_struct: Callable[[Any], Any] | None = None
    small_key_space: bool = False

    def key_of(self, network: str, author: bytes, subkey: bytes) -> bytes:
        """The DHT key of a record of this kind with these envelope fields."""
        parts = self.key_parts(network, author, subkey)
        if not self.small_key_space:
            return derive_key(self.key_tag, *parts)
        memo = (self.key_tag, parts)
        key = _KEY_MEMO.get(memo)
        if key is None:
            key = derive_key(self.key_tag, *parts)
            if len(_KEY_MEMO) < _KEY_MEMO_MAX:
                _KEY_MEMO[memo] = key
        return key


# Keys of small key spaces (32 server shards per network): a pure function's results, so
# a full memo only stops adding, never answers wrongly.
_KEY_MEMO: dict[tuple[str, tuple[bytes, ...]], bytes] = {}
_KEY_MEMO_MAX = 4096

_KINDS: dict[str, KindSpec] = {}


def register_kind(spec: KindSpec) -> KindSpec:
    """Add a kind; registering a second spec under one name is a programming error."""
    if spec.name in _KINDS and _KINDS[spec.name] is not spec:
        raise ValueError(f"record kind {spec.name!r} is registered twice")
    _KINDS[spec.name] = spec
    return spec


def kind_spec(name: str) -> KindSpec:
    """Return the spec of ``name`` or raise ``UnknownKind``."""
    try:
        return _KINDS[name]
    except KeyError:
        raise UnknownKind(f"unknown record kind {name[:40]!r}") from None


def all_kinds() -> dict[str, KindSpec]:
    """A copy of the registry (name -> spec)."""
    return dict(_KINDS)
