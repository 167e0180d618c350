"""The fairdht exception tree; every error the package raises on purpose is here.

::

    FairDHTError
    ├── RecordError            a record (bytes from a peer or a user) is not valid
    │   ├── MalformedRecord    undecodable, wrong shape or wrong field types
    │   ├── NotCanonical       decodes, but is not the one canonical byte form
    │   ├── RecordTooLarge     over MAX_RECORD_BYTES
    │   ├── UnknownKind        kind not in the registry
    │   ├── BadBody            body does not match its kind's schema
    │   ├── BadSignature       Ed25519 signature does not verify
    │   ├── FromTheFuture      issued_at beyond the allowed clock skew
    │   ├── Expired            expires_at is not after now
    │   ├── TTLTooLong         expires_at - issued_at exceeds the kind's max TTL
    │   ├── StaleRecord        seq not newer than the record held for its slot
    │   ├── WrongKey           stored under a DHT key it does not derive to
    │   └── QuotaExceeded      a per-key, per-author or total storage quota is full
    ├── ProtocolError          a peer's datagram or RPC reply is malformed (peer's fault)
    ├── KeyFileError           a key file is missing, unreadable, malformed or too open
    ├── StorageError           a local SQLite store cannot be opened or used
    ├── UsageError             a user's argument or input is invalid (exit code 2)
    └── NetworkError           the network could not do what was asked (exit code 1)
        ├── NoPeersError       no peer answered
        ├── NotAcceptedError   peers answered, but none accepted the record
        └── NotFoundError      nothing was found where something was required

Peers' bad input is dropped and counted at the adapter edge by ``code``; it never
escapes a task. Decoders of untrusted bytes raise only ``RecordError`` or
``ProtocolError`` (STYLE.md, after h11's RemoteProtocolError).
"""

from __future__ import annotations

__all__ = [
    "BadBody",
    "BadSignature",
    "Expired",
    "FairDHTError",
    "FromTheFuture",
    "KeyFileError",
    "MalformedRecord",
    "NetworkError",
    "NoPeersError",
    "NotAcceptedError",
    "NotCanonical",
    "NotFoundError",
    "ProtocolError",
    "QuotaExceeded",
    "RecordError",
    "RecordTooLarge",
    "StaleRecord",
    "StorageError",
    "TTLTooLong",
    "UnknownKind",
    "UsageError",
    "WrongKey",
]


class FairDHTError(Exception):
    """Base of every error fairdht raises on purpose."""

    code = "error"


class RecordError(FairDHTError):
    """A record is not valid; ``code`` names the rule it broke (used as a counter label)."""

    code = "record"


class MalformedRecord(RecordError):
    """The bytes do not decode to a record envelope of the right shape."""

    code = "malformed"


class NotCanonical(RecordError):
    """The record decodes but is not in its one canonical byte form."""

    code = "not_canonical"


class RecordTooLarge(RecordError):
    """The encoded record is larger than the limit."""

    code = "too_large"


class UnknownKind(RecordError):
    """The record's kind is not registered."""

    code = "unknown_kind"


class BadBody(RecordError):
    """The body does not match the schema of the record's kind."""

    code = "bad_body"


class BadSignature(RecordError):
    """The signature does not verify against the author key."""

    code = "bad_signature"


class FromTheFuture(RecordError):
    """``issued_at`` is further in the future than the allowed clock skew."""

    code = "from_future"


class Expired(RecordError):
    """``expires_at`` is not after now."""

    code = "expired"


class TTLTooLong(RecordError):
    """The record lives longer than its kind allows."""

    code = "ttl_too_long"


class StaleRecord(RecordError):
    """A record with an equal or newer ``seq`` is already held for this slot."""

    code = "stale"


class WrongKey(RecordError):
    """The record was offered under a DHT key it does not derive to."""

    code = "wrong_key"


class QuotaExceeded(RecordError):
    """A storage quota (per key, per author or total bytes) is full."""

    code = "quota"


class ProtocolError(FairDHTError):
    """A peer sent a datagram or reply that does not follow the wire protocol."""

    code = "protocol"


class KeyFileError(FairDHTError):
    """A key file cannot be used (missing, malformed, or readable by others)."""

    code = "key_file"


class StorageError(FairDHTError):
    """A local store cannot be opened or used (corrupt file, newer schema, closed)."""

    code = "storage"


class UsageError(FairDHTError):
    """A user's argument or input is invalid; the CLI exits with code 2."""

    code = "usage"


class NetworkError(FairDHTError):
    """The network could not do what was asked; the CLI exits with code 1."""

    code = "network"


class NoPeersError(NetworkError):
    """No peer answered."""

    code = "no_peers"


class NotAcceptedError(NetworkError):
    """Peers answered, but none accepted the record."""

    code = "not_accepted"


class NotFoundError(NetworkError):
    """Nothing was found where something was required (a record, a chunk, a checkpoint)."""

    code = "not_found"
