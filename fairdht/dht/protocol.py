"""fairdht's Kademlia protocol: four checked RPCs on the hardened rpcudp path.

``DHTProtocol`` subclasses kademlia's ``KademliaProtocol`` (for its routing-table and
refresh machinery) through ``HardenedRPCProtocol`` (for the checked datagram path),
and replaces every RPC (docs/protocol.md, "RPCs"):

- ``ping(sender_id, sender_pubkey, nonce, to_ip, to_port, token) -> [node_id, pubkey,
  signature, token]``: ids are BLAKE2b-160 of the Ed25519 key (DESIGN.md pitfall 10);
  the signature over the verifier's fresh nonce, both ids and the address is how a
  contact proves its key (S/Kademlia §4.1).
- ``store(sender_id, key, [record, ...]) -> [True | refusal code, ...]``: only from an
  address that proved itself (echoed a token, BEP 5); every record is validated
  (pitfall 1), then the store applies the slot rule and quotas.
- ``find_node(sender_id, target, token) -> [[id, ip, port], ...]``.
- ``find_value(sender_id, key, cursor, token) -> {"records", "next", "nodes", "token"}``:
  one page of whole records per reply, at most one datagram (pitfall 6).

Everything sent to a source that has not proven its address, in answer to what it
sent (the reply, and the challenge ping a claimed id triggers), is at most 3x the bytes
received from it: one ``AmplificationBudget`` per node (RFC 9000 §8.1). Requests are
rate-limited per host and per /24 or /48 before they are decoded (``SourceLimiter``).
Which contacts may enter the routing table is decided in one place, ``admit``: only
after a signed challenge, with a solved puzzle and within the per-subnet limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from kademlia.node import Node
from kademlia.protocol import KademliaProtocol

from fairdht.dht.admission import (
    NONCE_BYTES,
    TOKEN_BYTES,
    TokenMint,
    challenge_message,
    passes_puzzle,
    subnet_of,
    token_proof_message,
)
from fairdht.dht.config import DHTConfig
from fairdht.dht.metrics import Metrics
from fairdht.dht.nearest import closer_than, nearest
from fairdht.dht.ratelimit import Limit, SourceLimiter
from fairdht.dht.routing import Bucket, DHTRoutingTable, loop_time
from fairdht.dht.rpc import (
    HEADER_BYTES,
    MAX_DATAGRAM,
    Address,
    Dropped,
    HardenedRPCProtocol,
    RPCResult,
    RPCSpec,
    normalize_ip,
    pack,
    same_address,
)
from fairdht.dht.storage import RecordStore, Source
from fairdht.dht.store_gate import StoreGate
from fairdht.errors import (
    BadBody,
    BadSignature,
    Expired,
    FromTheFuture,
    MalformedRecord,
    NotCanonical,
    QuotaExceeded,
    RecordError,
    RecordTooLarge,
    StaleRecord,
    TTLTooLong,
    UnknownKind,
    WrongKey,
)
from fairdht.identity import NODE_ID_BYTES, PublicKey, SigningKey, node_id_of
from fairdht.records import KEY_BYTES, Record, check_time, validate_record

__all__ = [
    "FIND_NODE",
    "FIND_VALUE",
    "HOLDER_CONTACTS",
    "MAX_CONTACTS",
    "MAX_CURSOR_BYTES",
    "MAX_PAGE_RECORDS",
    "MAX_STORE_RECORDS",
    "MAX_TOKEN_ARG",
    "PAD_BYTES",
    "PING",
    "PUBKEY_BYTES",
    "REFUSAL_CODES",
    "REPLY_TOKEN_BYTES",
    "STORE",
    "STORE_BUDGET",
    "DHTProtocol",
    "Pong",
    "RecordCache",
    "ValuePage",
    "contact_wire",
    "cursor_of",
    "parse_contacts",
    "store_batches",
]

LOG = logging.getLogger(__name__)

PING: Final = "ping"
STORE: Final = "store"
FIND_NODE: Final = "find_node"
FIND_VALUE: Final = "find_value"

PUBKEY_BYTES: Final = 32
MAX_CONTACTS: Final = 64
MAX_STORE_RECORDS: Final = 32
MAX_PAGE_RECORDS: Final = 128
MAX_CURSOR_BYTES: Final = 128
MAX_CODE_CHARS: Final = 32
SIGNATURE_BYTES: Final = 64
# The trailing token argument: a token (8 bytes) or zero padding of at most this many.
MAX_TOKEN_ARG: Final = 1024
# A requester without a token pads find_node/find_value to this many bytes, so that 3x
# the request (RFC 9000 §8.1) still fits about 20 IPv4 contacts (QUIC pads its first
# packet for the same reason).
PAD_BYTES: Final = 256
# Tokens received and tokens presented, remembered per address (each table LRU).
_ADDRESS_MEMORY: Final = 4096
# Ids proven at an address by a signed challenge, remembered per address (LRU). One UDP
# endpoint is one node: a contact claiming another id at an address that proved its own
# id less than ``_CLAIM_MEMORY`` s ago is forged (S/Kademlia §4.1), and a lookup drops
# it without asking. An honest node that changed its key at the same address proves the
# new id at its next ping, which replaces the entry.
_PROVEN_MEMORY: Final = 1024
_CLAIM_MEMORY: Final = 300.0
# A challenge's answer in a find_value page: "key" and "sig" with their framing.
_PAGE_PROOF_BYTES: Final = 2 * 4 + 2 + PUBKEY_BYTES + 2 + SIGNATURE_BYTES
TOKEN_REFUSAL: Final = "token"
BUSY_REFUSAL: Final = "busy"
# Request bytes left for records in one STORE: the datagram minus header, the framing
# of ["store", [sender_id, key, [...]]] (under 64 bytes) and the writer's proof (token,
# key and signature: 110 bytes), minus 3 per record.
STORE_BUDGET: Final = MAX_DATAGRAM - HEADER_BYTES - 64 - 112
# A reply costs one request token more per this many bytes (docs/protocol.md, limits).
REPLY_TOKEN_BYTES: Final = 1024
# Budget bytes a challenge ping leaves for the reply it comes with: an empty contact
# list and its token, or an empty find_value page with its token and "retry" (header
# included).
_MIN_REPLY: Final = 80
# Likely writers whose identity check waits for their STORE (``DHTConfig.
# store_proof_wait``) at once, at most; more are challenged at once.
_MAX_AWAITING: Final = 256
# Contacts a holder names on a find_value page with records: only nodes closer to the
# key than itself, at most this many. A get needs read_replicas + 1 holders (3 at the
# default 2; 4 leaves room for one that stalls); a full list of k would cost the holder
# a ranking of its table and the reader k contacts to check per reply, to find holders
# it mostly knows already.
HOLDER_CONTACTS: Final = 4
# Reply bytes reserved for the find_value map's keys, "next" and headers.
_PAGE_OVERHEAD: Final = 64 + MAX_CURSOR_BYTES


# The refusal codes a STORE reply may carry: every record rule's code, plus "error".
REFUSAL_CODES: Final = frozenset(
    [
        *(
            cls.code
            for cls in (
                RecordTooLarge,
                MalformedRecord,
                UnknownKind,
                BadBody,
                TTLTooLong,
                NotCanonical,
                BadSignature,
                FromTheFuture,
                Expired,
                WrongKey,
                StaleRecord,
                QuotaExceeded,
            )
        ),
        TOKEN_REFUSAL,
        BUSY_REFUSAL,
        "error",
    ]
)


# Every admission compares a newcomer's subnet with each contact's (libp2p's diversity
# filter): parsing those addresses again each time was a large part of a put's work.
_subnet_of = functools.lru_cache(maxsize=4096)(subnet_of)


# -- argument checks (each raises Dropped) ----------------------------------------------


def _check_sender_id(value: Any) -> None:
    if not isinstance(value, bytes) or len(value) not in (0, NODE_ID_BYTES):
        raise Dropped("bad_node_id", "sender id must be 20 bytes, or empty for a light client")


def _check_key(value: Any) -> None:
    if not isinstance(value, bytes) or len(value) != KEY_BYTES:
        raise Dropped("bad_args", "key must be 20 bytes")


def _check_pubkey(value: Any) -> None:
    if not isinstance(value, bytes) or len(value) not in (0, PUBKEY_BYTES):
        raise Dropped("bad_args", "public key must be 32 bytes, or empty")


def _check_signature(value: Any) -> None:
    if not isinstance(value, bytes) or len(value) not in (0, SIGNATURE_BYTES):
        raise Dropped("bad_args", f"signature must be {SIGNATURE_BYTES} bytes, or empty")


def _check_store_token(value: Any) -> None:
    if not isinstance(value, bytes) or len(value) not in (0, TOKEN_BYTES):
        raise Dropped("bad_args", f"token must be {TOKEN_BYTES} bytes, or empty")


def _check_records(value: Any) -> None:
    if (
        not isinstance(value, list)
        or not 1 <= len(value) <= MAX_STORE_RECORDS
        or not all(isinstance(r, bytes) for r in value)
    ):
        raise Dropped("bad_args", f"records must be a list of 1..{MAX_STORE_RECORDS} bin")


def _check_nonce(value: Any) -> None:
    if not isinstance(value, bytes) or len(value) != NONCE_BYTES:
        raise Dropped("bad_args", f"nonce must be {NONCE_BYTES} bytes")


def _check_ip(value: Any) -> None:
    if not isinstance(value, str) or not 1 <= len(value) <= 45:
        raise Dropped("bad_args", "to_ip must be an IP literal")


def _check_port(value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
        raise Dropped("bad_args", "to_port must be 1..65535")


def _check_token(value: Any) -> None:
    if not isinstance(value, bytes) or len(value) > MAX_TOKEN_ARG:
        raise Dropped("bad_args", f"token must be bin of at most {MAX_TOKEN_ARG} bytes")


def _check_cursor(value: Any) -> None:
    if not isinstance(value, bytes) or len(value) > MAX_CURSOR_BYTES:
        raise Dropped("bad_args", f"cursor must be bin of at most {MAX_CURSOR_BYTES} bytes")


# -- reply parsers (each raises Dropped) ------------------------------------------------


# Contacts already parsed, by their exact wire values: holders name the same few
# contacts to many readers, and a Node costs a hex round trip of its id to build. Nodes
# are never changed once built, so one object may serve many replies.
_PARSED: dict[tuple[bytes, str, int], Node] = {}
_PARSED_MAX: Final = 4096


def _parse_contact(item: Any) -> Node:
    if type(item) is list and len(item) == 3:
        node_id, ip, port = item
        if type(node_id) is bytes and type(ip) is str and type(port) is int:
            node = _PARSED.get((node_id, ip, port))
            if node is not None:
                return node
            node = _parse_new_contact(item)
            if len(_PARSED) >= _PARSED_MAX:
                _PARSED.clear()
            _PARSED[(node_id, ip, port)] = node
            return node
    return _parse_new_contact(item)


def _parse_new_contact(item: Any) -> Node:
    if not isinstance(item, list) or len(item) != 3:
        raise Dropped("bad_contact", "a contact is [id, ip, port]")
    node_id, ip, port = item
    if not isinstance(node_id, bytes) or len(node_id) != NODE_ID_BYTES:
        raise Dropped("bad_contact", "contact id must be 20 bytes")
    if not isinstance(ip, str) or len(ip) > 45:
        raise Dropped("bad_contact", "contact ip must be an IP literal")
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise Dropped("bad_contact", "contact port must be 1..65535")
    try:
        ip = normalize_ip(ip)
    except ValueError:
        raise Dropped("bad_contact", "contact ip must be an IP literal") from None
    if ip in ("0.0.0.0", "::", "255.255.255.255"):
        raise Dropped("bad_contact", "contact ip is unspecified or broadcast")
    return Node(node_id, ip, port)


def parse_contacts(value: Any) -> list[Node]:
    """Parse an untrusted contact list; raise ``Dropped`` on any bad entry."""
    if not isinstance(value, list) or len(value) > MAX_CONTACTS:
        raise Dropped("bad_reply", f"contacts must be a list of at most {MAX_CONTACTS}")
    return [_parse_contact(item) for item in value]


def contact_wire(node: Node) -> list[Any]:
    """A contact as sent in replies: [id, ip, port]."""
    return [node.id, node.ip, node.port]


@dataclass(frozen=True, slots=True)
class Pong:
    """A checked ping reply: the responder's id and key (proved by its signature), a token."""

    node_id: bytes
    pubkey: bytes
    token: bytes


def _parse_ping_reply(value: Any, args: tuple[Any, ...]) -> Pong:
    if not isinstance(value, list) or len(value) != 4:
        raise Dropped("bad_reply", "ping reply is [node_id, pubkey, signature, token]")
    node_id, pubkey, signature, token = value
    if not isinstance(node_id, bytes) or len(node_id) != NODE_ID_BYTES:
        raise Dropped("bad_node_id", "ping reply id must be 20 bytes")
    if not isinstance(pubkey, bytes) or len(pubkey) != PUBKEY_BYTES:
        raise Dropped("bad_reply", "ping reply key must be 32 bytes")
    if not isinstance(signature, bytes) or len(signature) != SIGNATURE_BYTES:
        raise Dropped("bad_reply", "ping reply signature must be 64 bytes")
    if not isinstance(token, bytes) or len(token) != TOKEN_BYTES:
        raise Dropped("bad_reply", f"ping reply token must be {TOKEN_BYTES} bytes")
    if node_id_of(pubkey) != node_id:
        raise Dropped("bad_identity", "node id is not BLAKE2b-160 of the key")
    verifier_id, _key, nonce, to_ip, to_port = args[:5]
    message = challenge_message(nonce, verifier_id, node_id, to_ip, to_port)
    try:
        PublicKey(pubkey).verify(message, signature)
    except BadSignature:
        raise Dropped("bad_challenge", "challenge signature does not verify") from None
    return Pong(node_id, pubkey, token)


def _parse_store_reply(value: Any, args: tuple[Any, ...]) -> list[bool | str]:
    sent = args[2]
    if not isinstance(value, list) or len(value) != len(sent):
        raise Dropped("bad_reply", "store reply must have one entry per record")
    out: list[bool | str] = []
    for item in value:
        if item is True:
            out.append(True)
            continue
        if not isinstance(item, str) or not 1 <= len(item) <= MAX_CODE_CHARS:
            raise Dropped("bad_reply", "store reply entries are true or a refusal code")
        # Codes end up in counters and messages: a peer's other strings become "other".
        out.append(item if item in REFUSAL_CODES else "other")
    return out


@dataclass(frozen=True, slots=True)
class FoundNodes:
    """A find_node reply: the responder's closest contacts, its token for us, and its key
    when it answered our challenge (its signature checked, as a pong's)."""

    nodes: list[Node]
    token: bytes
    pubkey: bytes = b""


def _found_key(found: FoundNodes) -> bytes:
    return found.pubkey


def _parse_find_node_reply(value: Any, args: tuple[Any, ...]) -> FoundNodes:
    challenged = len(args) == 6
    if type(value) is not list or len(value) != (4 if challenged else 2):
        raise Dropped("bad_reply", "find_node reply is [contacts, token(, key, signature)]")
    contacts, token = value[0], value[1]
    if not isinstance(token, bytes) or len(token) != TOKEN_BYTES:
        raise Dropped("bad_reply", f"find_node reply token must be {TOKEN_BYTES} bytes")
    if not challenged:
        return FoundNodes(parse_contacts(contacts), token)
    pubkey = _check_proof(value[2], value[3], args[0], args[3:6], "find_node")
    return FoundNodes(parse_contacts(contacts), token, pubkey)


def _check_proof(
    pubkey: Any, signature: Any, verifier_id: bytes, challenge: tuple[Any, ...], rpc: str
) -> bytes:
    """The responder's key, if ``signature`` answers our ``challenge`` (nonce and the
    address we sent to) as a pong's would; the id it proves is the key's, whatever id
    the contact claimed (the caller compares them)."""
    if not isinstance(pubkey, bytes) or len(pubkey) != PUBKEY_BYTES:
        raise Dropped("bad_reply", f"{rpc} reply key must be 32 bytes")
    if not isinstance(signature, bytes) or len(signature) != SIGNATURE_BYTES:
        raise Dropped("bad_reply", f"{rpc} reply signature must be 64 bytes")
    nonce, to_ip, to_port = challenge
    message = challenge_message(nonce, verifier_id, node_id_of(pubkey), to_ip, to_port)
    try:
        PublicKey(pubkey).verify(message, signature)
    except BadSignature:
        raise Dropped("bad_challenge", "challenge signature does not verify") from None
    return pubkey


@dataclass(frozen=True, slots=True)
class ValuePage:
    """One find_value reply: encoded records (unvalidated), the next cursor, contacts."""

    records: list[bytes]
    next: bytes | None
    nodes: list[Node]
    token: bytes = b""
    # The responder trimmed the page for an unproven asker: ask again with the token.
    retry: bool = False
    # Its key, when it answered our challenge (its signature checked, as a pong's).
    pubkey: bytes = b""


def _parse_find_value_reply(value: Any, args: tuple[Any, ...]) -> ValuePage:
    if not isinstance(value, dict):
        raise Dropped("bad_reply", "find_value reply is a map")
    records = value.get("records")
    nxt = value.get("next")
    if not isinstance(records, list) or len(records) > MAX_PAGE_RECORDS:
        raise Dropped("bad_reply", "records must be a list of bin")
    for raw in records:
        if type(raw) is not bytes:  # msgpack decodes bin as bytes, nothing derived
            raise Dropped("bad_reply", "records must be a list of bin")
    if nxt is not None:
        cursor = args[2]
        if not isinstance(nxt, bytes) or not 0 < len(nxt) <= MAX_CURSOR_BYTES or nxt <= cursor:
            raise Dropped("bad_reply", "next must be a cursor after the one asked")
        if not records:
            raise Dropped("bad_reply", "a page with a next cursor must carry records")
    token = value.get("token", b"")
    if not isinstance(token, bytes) or len(token) > MAX_TOKEN_ARG:
        raise Dropped("bad_reply", "token must be bin")
    retry = value.get("retry", False) is True
    nodes = parse_contacts(value.get("nodes", []))
    if len(args) == 4:
        return ValuePage(records, nxt, nodes, token, retry)
    pubkey = _check_proof(value.get("key"), value.get("sig"), args[0], args[4:7], "find_value")
    return ValuePage(records, nxt, nodes, token, retry, pubkey)


def _page_key(page: ValuePage) -> bytes:
    return page.pubkey


# -- helpers ----------------------------------------------------------------------------


def cursor_of(record: Record) -> bytes:
    """The paging position of a record: author ‖ subkey (authors are 32 bytes, so this
    orders exactly like the slot (author, subkey))."""
    return record.author + record.subkey


def _bin_size(n: int) -> int:
    return n + (2 if n < 256 else 3 if n < 65536 else 5)


def store_batches(raws: list[bytes], budget: int = STORE_BUDGET) -> list[list[bytes]]:
    """Split encoded records into STORE-sized batches (whole records, in order)."""
    batches: list[list[bytes]] = []
    current: list[bytes] = []
    used = 0
    for raw in raws:
        size = _bin_size(len(raw))
        if current and (used + size > budget or len(current) >= MAX_STORE_RECORDS):
            batches.append(current)
            current, used = [], 0
        current.append(raw)
        used += size
    if current:
        batches.append(current)
    return batches


class RecordCache:
    """Remembers records that decoded and verified, so bytes seen again skip Ed25519.

    A first sight runs ``validate_record``; the time-free part of its verdict (decode,
    canonical form, signature) is then cached by the exact bytes, and time and key are
    checked again on every later use.
    """

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._cache: OrderedDict[bytes, Record] = OrderedDict()
        self.hits = 0

    def known(self, raw: bytes) -> bool:
        """True if ``raw`` verified before (checking it again costs no signature)."""
        return raw in self._cache

    def validate(self, raw: bytes, *, now: float, key: bytes | None = None) -> Record:
        """Return the record in ``raw`` if valid at ``now`` under ``key``; raise RecordError."""
        record = self._cache.get(raw)
        if record is None:
            record = validate_record(raw, now=now, key=key)
            self._cache[raw] = record
            if len(self._cache) > self._size:
                self._cache.popitem(last=False)
            return record
        self.hits += 1
        self._cache.move_to_end(raw)
        check_time(record, now)
        if key is not None and record.key != key:
            raise WrongKey("record does not derive to the DHT key it was offered under")
        return record


# -- the protocol -----------------------------------------------------------------------


class DHTProtocol(HardenedRPCProtocol, KademliaProtocol):  # type: ignore[misc]
    """One node's side of the wire: serves the four RPCs and makes checked calls."""

    specs: ClassVar[dict[str, RPCSpec]] = {
        PING: RPCSpec(
            PING,
            (
                _check_sender_id,
                _check_pubkey,
                _check_nonce,
                _check_ip,
                _check_port,
                _check_token,
                _check_signature,
            ),
            _parse_ping_reply,
            optional=1,  # the sender's proof over the token it echoes
        ),
        # The writer's token, key and signature (``rpc_store``) are optional, together.
        STORE: RPCSpec(
            STORE,
            (
                _check_sender_id,
                _check_key,
                _check_records,
                _check_store_token,
                _check_pubkey,
                _check_signature,
            ),
            _parse_store_reply,
            optional=3,
        ),
        # A challenge for the responder (nonce, and the address it was sent to) is
        # optional: its signed answer rides on the reply (``rpc_find_node``).
        FIND_NODE: RPCSpec(
            FIND_NODE,
            (_check_sender_id, _check_key, _check_token, _check_nonce, _check_ip, _check_port),
            _parse_find_node_reply,
            optional=3,
        ),
        FIND_VALUE: RPCSpec(
            FIND_VALUE,
            (
                _check_sender_id,
                _check_key,
                _check_cursor,
                _check_token,
                _check_nonce,
                _check_ip,
                _check_port,
            ),
            _parse_find_value_reply,
            optional=3,  # a challenge, as find_node's
        ),
    }
    # A STORE checks and writes up to ~30 records: it waits its turn per source /24.
    queued_rpcs: ClassVar[frozenset[str]] = frozenset({STORE})

    def __init__(
        self,
        node_id: bytes,
        public_key: bytes,
        store: RecordStore,
        *,
        config: DHTConfig,
        metrics: Metrics,
        clock: Callable[[], float],
        records: RecordCache,
        rng: random.Random | None = None,
        key: SigningKey | None = None,
    ) -> None:
        HardenedRPCProtocol.__init__(
            self, metrics=metrics, timeout=config.rpc_timeout, proven_for=config.token_period
        )
        self.config = config
        self.client_mode = config.client_mode
        self.serving = not config.client_mode
        self.source_node = Node(node_id)
        self.public_key = public_key
        self.signing_key = key
        if key is not None and key.public_key.raw != public_key:
            raise ValueError("signing key does not match the public key")
        # On the wire a light client has no id and no key (DESIGN.md, "client mode").
        self.wire_id = b"" if config.client_mode else node_id
        self.wire_key = b"" if config.client_mode else public_key
        self.storage = store
        self.clock = clock
        self.records = records
        self.rng = rng or random.Random()
        self.router = DHTRoutingTable(self, config.ksize, self.source_node)
        self.on_new_contact: Callable[[Node], None] | None = None
        self._failures: dict[bytes, int] = {}
        self._verifying: set[Address] = set()
        self._ids_at: OrderedDict[Address, tuple[bytes, float]] = OrderedDict()
        # Likely writers whose identity check waits for the proof in their STORE.
        self._awaiting: dict[Address, asyncio.TimerHandle] = {}
        self._head_checks: set[bytes] = set()
        self._table_generation = 0
        # Address validation (RFC 9000 §8.1 with BEP 5 tokens), all timed by the loop.
        self.tokens = TokenMint(config.token_period)
        self._received_tokens: OrderedDict[Address, bytes] = OrderedDict()  # peer -> token
        self._token_times: OrderedDict[Address, float] = OrderedDict()  # peer -> received
        self._presented: OrderedDict[Address, float] = OrderedDict()  # peer -> until
        self._presenting: dict[Address, asyncio.Task[Any]] = {}
        # Token buckets per host and per /24 or /48 (fairdht.dht.ratelimit), all from the
        # config so that a node can exempt its local networks there.
        self.request_limits = SourceLimiter(
            Limit(config.request_rate, config.request_burst),
            Limit(config.subnet_request_rate, config.subnet_request_burst),
            size=config.limiter_size,
        )
        self.verify_limits = SourceLimiter(
            Limit(config.verify_rate, config.verify_burst),
            Limit(config.subnet_verify_rate, config.subnet_verify_burst),
            size=config.limiter_size,
        )
        # STOREs from a source with no room left pass at a trickle (fairdht.dht.store_gate).
        self.store_gate = StoreGate(
            store, lambda ip: self._store_source(b"", (ip, 0)), size=config.limiter_size
        )

    # -- routing-table admission (the one place) ------------------------------------------

    def admit(
        self, node: Node, pubkey: bytes | None = None, *, reserve: int = 0, prove: bool = True
    ) -> bool:
        """Let ``node`` into the routing table if it may enter; True if it is (now) there.

        ``pubkey`` is given only once ``node`` answered our signed challenge at its
        address (``call_ping``, S/Kademlia §4.1). A contact enters only then, with an id
        that solves the static puzzle and within the per-subnet limits. A sighting
        without proof refreshes a matching contact, or starts one challenge; light
        clients (empty id) and our own id never enter. ``reserve``: see ``verify_later``.
        """
        if pubkey is None and self.router.refresh(node.id, node.ip, node.port) is not None:
            return True  # a contact seen again at its address: now its bucket's tail (§2.2)
        if len(node.id) != NODE_ID_BYTES or node.id == self.source_node.id:
            return False
        if node.ip is None or node.port is None:
            return False
        if not passes_puzzle(node.id, self.config.puzzle_bits):
            self.metrics.inc("routing.refused.puzzle")
            return False
        known = self.router.contact(node.id)
        if pubkey is None:
            if known is not None and known.same_home_as(node):
                self.router.add_contact(known)  # moves it to the bucket's tail (§2.2)
                return True
            if known is None:
                if not self.router.has_room_for(node):
                    return False  # its bucket is full: no challenge for a spare
                refusal = self._subnet_refusal(node)
                if refusal is not None:
                    self.metrics.inc(f"routing.refused.{refusal}")
                    return False  # it could not enter anyway: no challenge for it
            self.verify_later((node.ip, node.port), reserve=reserve, prove=prove)
            return False
        if node_id_of(pubkey) != node.id:
            self.metrics.inc("dropped.bad_identity")
            return False
        self._proven_at((node.ip, node.port), node.id)
        if known is not None and not known.same_home_as(node):
            # Same key, new address: the key proved itself at the new one.
            self.router.remove_contact(known)
            self._table_changed()
            known = None
        if known is None:
            refusal = self._subnet_refusal(node)
            if refusal is not None:
                self.metrics.inc(f"routing.refused.{refusal}")
                return False
        self._failures.pop(node.id, None)
        self.router.add_contact(node)
        self._table_changed()
        entered = known is None and self.router.contact(node.id) is not None
        if entered:
            self.metrics.inc("routing.added")
            if self.on_new_contact is not None:
                self.on_new_contact(node)
        return self.router.contact(node.id) is not None

    def _table_subnets(self) -> Counter[str]:
        """Contacts per subnet over the whole table (each bucket's ``Bucket.subnets``)."""
        counts: Counter[str] = Counter()
        for bucket in self.router.buckets:
            counts.update(bucket.subnets())
        return counts

    def _table_changed(self) -> None:
        self._table_generation += 1

    def _subnet_refusal(self, node: Node) -> str | None:
        """Why ``node`` may not enter for IP diversity, or None (libp2p kad-dht's filter)."""
        cfg = self.config
        if cfg.local.exempts(node.ip):  # a LAN or one machine: fairdht.localnet
            return None
        group = _subnet_of(node.ip)
        if cfg.subnet_bucket_limit:
            bucket: Bucket = self.router.buckets[self.router.get_bucket_for(node)]
            # The replacement cache counts too, so a promotion cannot exceed the limit.
            # Counts are kept per bucket between its changes: every sighting of an
            # unknown node asks, and a full bucket holds k contacts and 5k spares.
            same = bucket.spare_subnets()[group]
            for held in (bucket.nodes.get(node.id), bucket.replacement_nodes.get(node.id)):
                if held is not None and _subnet_of(held.ip) == group:
                    same -= 1  # the node itself does not count against itself
            if same >= cfg.subnet_bucket_limit:
                return "subnet_bucket"
        if cfg.subnet_table_limit:
            same = sum(bucket.subnets()[group] for bucket in self.router.buckets)
            known = self.router.contact(node.id)
            if known is not None and _subnet_of(known.ip) == group:
                same -= 1
            if same >= cfg.subnet_table_limit:
                return "subnet_table"
        return None

    def welcome_if_new(self, node: Node) -> None:
        """kademlia's hook: here, an unverified sighting of ``node`` (see ``admit``)."""
        self.admit(node)

    def verify_later(
        self, address: Address, *, reserve: int = 0, enter: bool = True, prove: bool = True
    ) -> None:
        """Challenge ``address`` once (bounded, deduplicated) so its signed pong can admit it.

        A challenge sent while answering a request from ``address`` is charged to its
        amplification budget, keeping ``reserve`` bytes for the reply: if it does not
        fit, it is skipped (the next sighting tries again). With ``enter`` False it is
        for the address only: the pong proves it, and admits the responder only where
        it fits without displacing anyone (no head check of a full bucket). A challenge
        charged so carries no proof of our own id (``call_ping``): it is sized without;
        nor does one with ``prove`` False.
        """
        if address in self._verifying:
            return
        if len(self._verifying) >= self.config.max_verify_in_flight:
            self.metrics.inc("routing.verify_skipped")
            return
        charged = self._charge_challenge(address, reserve)
        if charged is None:
            self.metrics.inc("amplification.challenge_skipped")
            return
        self._verifying.add(address)
        prove = prove and not charged
        self.tasks.spawn(self._verify(address, enter, prove=prove), name="verify")

    def _challenge_bytes(self, address: Address) -> int:
        """The size of ``call_ping``'s datagram to ``address`` (with an 8-byte token, the
        most, and no proof of our own: a charged challenge carries none)."""
        args = [self.wire_id, self.wire_key, bytes(NONCE_BYTES), *address, bytes(TOKEN_BYTES), b""]
        return HEADER_BYTES + len(pack([PING, args]))

    def _charge_challenge(self, address: Address, reserve: int) -> bool | None:
        """Take a challenge ping's bytes from the budget of the source being answered:
        True if charged, False if nothing was due, None if it does not fit."""
        answering = self.answering
        if answering is None or not same_address(answering, address):
            return False  # not in answer to this address: our own lookup or a bucket check
        now = self.now()
        left = self.budget.remaining(address, now)
        if left is None:
            return False  # proven
        size = self._challenge_bytes(address)
        if left - reserve >= size and self.budget.allow(address, size, now):
            return True
        return None

    async def _verify(self, address: Address, enter: bool, *, prove: bool = True) -> None:
        try:
            why = "challenge" if enter else "address"
            await self.call_ping(address, why=why, enter=enter, prove=prove)
        finally:
            self._verifying.discard(address)

    def check_head(self, head: Node) -> None:
        """A full bucket met a new contact: ping its head, evict it if silent (§2.2)."""
        if head.id in self._head_checks:
            return
        self._head_checks.add(head.id)
        self.tasks.spawn(self._check_head(head), name="head-check")

    async def _check_head(self, head: Node) -> None:
        try:
            if await self.call_ping((head.ip, head.port), why="head") is None:
                self.note_failure(head, evict=True)
        finally:
            self._head_checks.discard(head.id)

    def note_success(self, node: Node) -> None:
        """``node`` answered: clear its failures and refresh (or verify) it."""
        self._failures.pop(node.id, None)
        self.admit(node)

    def note_failure(self, node: Node, *, evict: bool = False) -> None:
        """``node`` did not answer; drop it after ``max_failures`` in a row."""
        known = self.router.contact(node.id)
        if known is None or not known.same_home_as(node):
            return
        count = self._failures.get(node.id, 0) + 1
        if evict or count >= self.config.max_failures:
            self._failures.pop(node.id, None)
            self.router.remove_contact(known)
            self._table_changed()
            self.metrics.inc("routing.evicted")
        else:
            self._failures[node.id] = count

    def _note_sender(
        self, sender_id: bytes, address: Address, *, writer: bool = False
    ) -> Node | None:
        """A request from ``sender_id`` at ``address``: refresh the contact, or admit it.

        ``writer``: a likely writer, whose STORE will carry its proof (``rpc_store``):
        its identity check waits for that (``_await_proof``)."""
        if not sender_id:
            return None  # a light client: never a contact, never handed replicas
        known: Node | None = self.router.refresh(sender_id, address[0], address[1])
        if known is not None:
            return known  # a contact seen again at its address (``admit``'s first case)
        node = Node(sender_id, address[0], address[1])
        if writer and address not in self._verifying:
            self._await_proof(node)
        else:
            # A challenge it triggers leaves room for the smallest whole reply.
            self.admit(node, reserve=_MIN_REPLY)
        return node

    def _await_proof(self, node: Node) -> None:
        """Challenge ``node`` only if its STORE has not proved it in ``store_proof_wait`` s.

        The challenge is charged to the source's amplification budget now, while its
        request's credit is there; if it does not fit, none is sent (as ``verify_later``).
        """
        address = (node.ip, node.port)
        if address in self._awaiting:
            return
        if len(self._awaiting) >= _MAX_AWAITING:
            self.admit(node, reserve=_MIN_REPLY)
            return
        # Charged now, while the request's credit is there; it is sent without a proof.
        if self._charge_challenge(address, _MIN_REPLY) is None:
            self.metrics.inc("amplification.challenge_skipped")
            return
        loop = asyncio.get_running_loop()
        self._awaiting[address] = loop.call_later(
            self.config.store_proof_wait, self._proof_missing, node
        )

    def _proof_missing(self, node: Node) -> None:
        """No STORE proved ``node`` in time: the identity check of any other sighting."""
        self._awaiting.pop((node.ip, node.port), None)
        self.metrics.inc("store_proof.missing")
        self.admit(node, prove=False)

    def _proof_arrived(self, address: Address) -> None:
        handle = self._awaiting.pop(address, None)
        if handle is not None:
            handle.cancel()

    # -- address validation and rate limits -------------------------------------------------

    @staticmethod
    def _remember(table: OrderedDict[Address, Any], address: Address, value: Any) -> None:
        table[address] = value
        table.move_to_end(address)
        while len(table) > _ADDRESS_MEMORY:
            table.popitem(last=False)

    def proven(self, address: Address) -> bool:
        """True if ``address`` echoed our token or answered our challenge lately."""
        return self.budget.proven(address, loop_time())

    def _prove(self, address: Address) -> None:
        self.budget.prove(address, loop_time())

    def _token_valid(self, sender: Address, token: bytes) -> bool:
        """True if ``token`` is ours for ``sender``'s address, which it then proves."""
        if token and self.tokens.check(token, sender[0], sender[1], loop_time()):
            self._prove(sender)
            return True
        return False

    def _token_echoed(self, sender: Address, token: bytes) -> bool:
        """``_source_proven``, True only if ``token`` itself is valid (not an older proof)."""
        if self._token_valid(sender, token):
            return True
        if not self.proven(sender):
            self.metrics.inc("amplification.capped")
        return False

    def _admit_by_token_proof(
        self, sender: Address, sender_id: bytes, token: bytes, pubkey: bytes, signature: bytes
    ) -> bool:
        """Admit ``sender_id`` at ``sender`` if it signed our valid ``token`` (a ping's or a
        STORE's proof): the answer to a challenge, without the ping. True if it is now a
        contact there (or already was); the check costs the sender's signature budget."""
        self._proof_arrived(sender)
        if self.router.refresh(sender_id, sender[0], sender[1]) is not None:
            return True  # a contact at this address already: nothing to prove
        if not self.verify_limits.allow(sender[0], loop_time()):
            self.metrics.inc("ratelimit.verifications")
            return False
        if not self._token_proof_ok(sender_id, token, pubkey, signature):
            return False
        self.admit(Node(sender_id, sender[0], sender[1]), pubkey)
        return True

    def _token_proof_ok(
        self, sender_id: bytes, token: bytes, pubkey: bytes, signature: bytes
    ) -> bool:
        """True if ``signature`` by ``pubkey``, the key of ``sender_id``, signs our valid
        ``token``: a challenge answered without the ping (``token_proof_message``).
        Counted, and charged to the sender's signature budget by the caller's checks."""
        if node_id_of(pubkey) != sender_id or len(signature) != SIGNATURE_BYTES:
            self.metrics.inc("token_proof.bad")
            return False
        try:
            PublicKey(pubkey).verify(token_proof_message(token, sender_id), signature)
        except BadSignature:
            self.metrics.inc("token_proof.bad")
            return False
        self.metrics.inc("token_proof.ok")
        return True

    def _source_proven(self, sender: Address, token: bytes) -> bool:
        """Check an echoed token; False (and counted) if the sender is still unproven."""
        return self._token_echoed(sender, token) or self.proven(sender)

    def _token_for(self, sender: Address) -> bytes:
        return self.tokens.mint(sender[0], sender[1], loop_time())

    def allow_request(self, address: Address) -> bool:
        """Token buckets per host and per /24 or /48 over every request (before decoding)."""
        refusal = self.request_limits.refusal(address[0], loop_time())
        if refusal is None:
            return True
        self.metrics.inc("ratelimit.requests")
        self.metrics.inc(f"ratelimit.requests.{refusal}")
        return False

    def handler_scope(self, name: str) -> contextlib.AbstractContextManager[None]:
        """A STORE's records are written in one transaction, committed (durable) before
        the reply: one commit per datagram instead of one per record."""
        return self.storage.batch() if name == STORE else contextlib.nullcontext()

    def shed_request(self, address: Address, name: str) -> bool:
        """A STORE from a source the store has no room for is dropped past a trickle."""
        return name == STORE and self.store_gate.sheds(address[0], loop_time())

    def replied(self, address: Address, nbytes: int) -> None:
        """A reply costs its source one more request token per full KiB it carries, so a
        flood of 7 KiB find_value pages is held to an eighth of the request rate."""
        extra = nbytes // REPLY_TOKEN_BYTES
        if extra:
            self.request_limits.charge(address[0], loop_time(), extra)

    def _token_arg(self, address: Address, pad: int) -> bytes:
        """The trailing token argument for a request to ``address``: its token if received
        less than a token period ago (so surely valid), else padding. A token that may
        have expired would make us an unproven asker of a small request: a reply trimmed
        to 3x it, and no room for the address check that could prove us."""
        return self._fresh_token(address) or bytes(pad)

    def _fresh_token(self, address: Address) -> bytes:
        """The token ``address`` handed us less than a token period ago, else b""."""
        token = self._received_tokens.get(address)
        return token if token is not None and self._fresh(address, token) else b""

    def holds_token(self, address: Address) -> bool:
        """True if we hold a token of ``address`` that is surely valid: our next STORE
        there carries it (``call_store``), and needs no presentation first."""
        return bool(self._fresh_token(address))

    def _presented_now(self, address: Address) -> None:
        self._remember(self._presented, address, loop_time() + self.config.token_period / 2)

    def _note_token(self, address: Address, token: bytes) -> None:
        if len(token) == TOKEN_BYTES:
            self._remember(self._received_tokens, address, token)
            self._remember(self._token_times, address, loop_time())

    def _fresh(self, address: Address, token: bytes) -> bool:
        """True if ``token`` is the one ``address`` handed us less than a token period ago:
        minted under its current secret, it is still valid (docs/protocol.md, "Address
        validation": a token lives one to two periods). An older one may have rotated
        away, so echoing it proves nothing for sure."""
        if len(token) != TOKEN_BYTES or self._received_tokens.get(address) != token:
            return False
        received = self._token_times.get(address)
        return received is not None and loop_time() - received < self.config.token_period

    # -- RPC handlers ---------------------------------------------------------------------

    def rpc_ping(
        self,
        sender: Address,
        sender_id: bytes,
        pubkey: bytes,
        nonce: bytes,
        to_ip: str,
        to_port: int,
        token: bytes,
        proof: bytes = b"",
    ) -> list[bytes]:
        """Sign the challenge; a full node's ping is a sighting we challenge back, unless
        its ``proof`` (a signature over the token it echoes) already proved its id."""
        if bool(sender_id) != bool(pubkey):
            raise Dropped("bad_args", "ping sends both id and key, or neither")
        if self.signing_key is None:
            raise Dropped("not_serving", "no signing key")
        if sender_id and node_id_of(pubkey) != sender_id:
            raise Dropped("bad_identity", "sender id is not BLAKE2b-160 of its key")
        # The reply (154 bytes) fits 3x the smallest valid ping (55 bytes), and a token
        # echo proves the sender's address.
        echoed = self._token_echoed(sender, token)
        signature = self.signing_key.sign(
            challenge_message(nonce, sender_id, self.wire_id, to_ip, to_port)
        )
        reply = [self.wire_id, self.wire_key, signature, self._token_for(sender)]
        if (
            sender_id
            and echoed
            and proof
            and self._admit_by_token_proof(sender, sender_id, token, pubkey, proof)
        ):
            # It signed our token for its address: its id is proved, no challenge back.
            self._presented_now(sender)
        elif sender_id:
            # Its key is claimed, not proved: challenge it back (S/Kademlia §4.1), from
            # what the budget leaves after the reply (a ping with an id is at least 107
            # bytes: 321 of credit cover the 154-byte pong and a challenge of <= 156).
            self.admit(
                Node(sender_id, sender[0], sender[1]),
                reserve=HEADER_BYTES + len(pack(reply)),
            )
            # A full node challenges from its own socket; our signed answer proves our
            # address to it (its verifier marks us proven), so STOREs need no token echo.
            self._presented_now(sender)
        return reply

    def rpc_store(
        self,
        sender: Address,
        sender_id: bytes,
        key: bytes,
        raws: list[bytes],
        token: bytes = b"",
        pubkey: bytes = b"",
        signature: bytes = b"",
    ) -> list[bool | str]:
        """Validate and store each record; answer True or its refusal code, in order.

        ``token`` (ours, for the sender's address) proves the address; with it, the
        writer's ``pubkey`` and ``signature`` over it prove its id (``store_proof``)."""
        if self._token_valid(sender, token) and pubkey and sender_id:
            self._admit_by_token_proof(sender, sender_id, token, pubkey, signature)
        if not self.proven(sender):
            # BEP 5: a write needs a token bound to the writer's address, so a spoofed
            # STORE costs us nothing but this reply (smaller than the request).
            self.metrics.inc("store.refused.token", len(raws))
            return [TOKEN_REFUSAL] * len(raws)
        self._note_sender(sender_id, sender)
        source = self._store_source(sender_id, sender)
        now = self.clock()
        tick = loop_time()
        results: list[bool | str] = []
        for raw in raws:
            if not self.records.known(raw) and self.storage.refuses_unverified(
                key, raw, source, now=now
            ):
                # Its source is at its storage quota: refused before the signature check.
                self.metrics.inc(f"store.refused.{QuotaExceeded.code}")
                self.metrics.inc("store.quota_unverified")
                results.append(QuotaExceeded.code)
                continue
            if not self.records.known(raw) and not self.verify_limits.allow(sender[0], tick):
                # Each unseen record costs an Ed25519 check: bounded per source IP.
                self.metrics.inc("ratelimit.verifications")
                self.metrics.inc(f"store.refused.{BUSY_REFUSAL}")
                results.append(BUSY_REFUSAL)
                continue
            try:
                record = self.records.validate(raw, now=now, key=key)
                self.storage.put(key, record, now=now, source=source)
            except RecordError as exc:
                self.metrics.inc(f"store.refused.{exc.code}")
                results.append(exc.code)
            except Exception:
                self.metrics.inc("store.refused.error")
                LOG.exception("storing a record failed")
                results.append("error")
            else:
                self.metrics.inc("store.accepted")
                results.append(True)
        return results

    def _store_source(self, sender_id: bytes, sender: Address) -> Source:
        """Whom a STORE is charged to (docs/protocol.md, "Storage policy"): a routing-table
        contact at its known address (replication, hand-over, read repair) by its id;
        a light client or an unknown address by its IP and /24 (/48)."""
        known = self.router.contact(sender_id) if sender_id else None
        if known is not None and known.same_home_as(Node(sender_id, sender[0], sender[1])):
            source = Source.contact(sender_id, sender[0])
        else:
            source = Source.client(sender[0])
        if self.config.local.exempts(sender[0]):
            # A LAN or one machine (fairdht.localnet): its peers share one /24 by
            # nature, so each is its own group; per-IP and per-contact quotas still hold.
            return Source(source.account, f"lan:{sender[0]}")
        return source

    def rpc_find_node(
        self,
        sender: Address,
        sender_id: bytes,
        target: bytes,
        token: bytes,
        nonce: bytes = b"",
        to_ip: str = "",
        to_port: int = 0,
    ) -> list[Any]:
        """The k closest contacts we know to ``target``, never the asker itself, and our
        token for the asker's address: ``[contacts, token]``; with a challenge, also our
        key and our signature of it, as a pong's (``[contacts, token, key, signature]``)."""
        proven = self._source_proven(sender, token)
        neighbors = self._neighbors(target, sender)
        # A full node looking up a target (not its own id: a join) we are among the k
        # closest to is most likely a writer about to STORE here. Its STORE echoes the
        # token below, proving its address (BEP 5), and signs it, proving its id
        # (S/Kademlia §4.1): its identity check waits for that instead of a ping now.
        writer = bool(sender_id) and target != sender_id and self._among_closest(target, neighbors)
        self._note_sender(sender_id, sender, writer=writer)
        contacts = [contact_wire(n) for n in neighbors]
        reply: list[Any] = [contacts, self._token_for(sender)]
        if nonce:
            reply += self._answer_challenge(sender_id, nonce, to_ip, to_port)
        if not proven:
            cap = self._payload_cap(sender)
            while contacts and len(pack(reply)) > cap:
                contacts.pop()
        return reply

    def _answer_challenge(
        self, sender_id: bytes, nonce: bytes, to_ip: str, to_port: int
    ) -> list[bytes]:
        """Our key and our signature of a challenge that came in a request, as a pong's:
        with our real identity even while hidden (``AutoNATProtocol.rpc_ping`` does the
        same), since the asker was handed our address and checks the id it asked for."""
        if self.signing_key is None:
            raise Dropped("not_serving", "no signing key")
        message = challenge_message(nonce, sender_id, self.source_node.id, to_ip, to_port)
        return [self.public_key, self.signing_key.sign(message)]

    def _among_closest(self, target: bytes, neighbors: list[Node]) -> bool:
        """True if fewer than k of our ``neighbors`` of ``target`` are closer to it than we
        are: a lookup for ``target`` would likely end with us among its k closest."""
        t = int.from_bytes(target, "big")
        mine = self.source_node.long_id ^ t
        closer = sum(1 for n in neighbors if n.long_id ^ t < mine)
        return closer < self.config.ksize

    def _payload_cap(self, sender: Address) -> int:
        """Reply payload bytes the sender's amplification budget still allows."""
        left = self.budget.remaining(sender, self.now())
        return min(MAX_DATAGRAM, MAX_DATAGRAM if left is None else left) - HEADER_BYTES

    def rpc_find_value(
        self,
        sender: Address,
        sender_id: bytes,
        key: bytes,
        cursor: bytes,
        token: bytes,
        nonce: bytes = b"",
        to_ip: str = "",
        to_port: int = 0,
    ) -> dict[str, Any]:
        """One page of the records under ``key`` after ``cursor``, plus contacts on page one.

        An unproven asker gets what fits 3x its request, the token to come back with,
        and ``retry`` if not even one record fitted. With a challenge, the page also
        carries our key and our signature of it (``key``, ``sig``), as a pong's.
        """
        proven = self._source_proven(sender, token)
        self._note_sender(sender_id, sender)
        now = self.clock()
        held = self.storage.get(key, now=now, include_withdrawn=True)
        if cursor:
            nodes: list[list[Any]] = []
        elif held:
            # A holder's records end most reads (Kademlia §2.3: a node holding the value
            # returns it instead of contacts); the reader still needs a way to closer,
            # possibly newer holders, so only those are named (docs/protocol.md).
            nodes = [[n.id, n.ip, n.port] for n in self._closer_neighbors(key, sender)]
        else:
            nodes = [[n.id, n.ip, n.port] for n in self._neighbors(key, sender)]
        reply: dict[str, Any] = {
            "records": [],
            "next": None,
            "nodes": nodes,
            "token": self._token_for(sender),
        }
        if nonce:
            reply["key"], reply["sig"] = self._answer_challenge(sender_id, nonce, to_ip, to_port)
        if not proven:
            cap = self._payload_cap(sender) - 16  # room for "retry": true
            while nodes and len(pack(reply)) > cap:
                nodes.pop()
            budget = cap - len(pack(reply))
        else:
            budget = MAX_DATAGRAM - HEADER_BYTES - _PAGE_OVERHEAD - len(pack(nodes))
            if nonce:
                budget -= _PAGE_PROOF_BYTES
            if (
                not cursor
                and len(held) <= MAX_PAGE_RECORDS
                and sum(len(r.raw) for r in held) + 3 * len(held) <= budget
            ):
                # Every record fits (3 bytes of framing each is the most a record of
                # up to 64 KiB takes): the page is all of them, as the loop below would
                # find one record at a time.
                reply["records"] = [r.raw for r in sorted(held, key=cursor_of)]
                return reply
        page: list[bytes] = reply["records"]
        last: Record | None = None
        nxt: bytes | None = None
        truncated = False
        for record in sorted(held, key=cursor_of):
            if cursor and cursor_of(record) <= cursor:
                continue
            size = _bin_size(len(record.raw))
            # An unproven asker's page must also have room for its ``next``: the
            # position of the last record sent, in place of nil.
            if not proven and size + _bin_size(len(record.author) + len(record.subkey)) > budget:
                truncated = True
                nxt = cursor_of(last) if last is not None else None
                break
            if last is not None and (size > budget or len(page) >= MAX_PAGE_RECORDS):
                nxt = cursor_of(last)
                break
            page.append(record.raw)
            last = record
            budget -= size
        reply["next"] = nxt
        if truncated and nxt is None:
            reply["retry"] = True
        return reply

    def _closer_neighbors(self, key: bytes, sender: Address) -> list[Node]:
        """At most ``HOLDER_CONTACTS`` contacts closer to ``key`` than this node, nearest
        first, never the asker."""
        mine = self.source_node.long_id ^ int.from_bytes(key, "big")
        return closer_than(self.router, key, mine, HOLDER_CONTACTS, exclude=sender)

    def _neighbors(self, target: bytes, sender: Address) -> list[Node]:
        return nearest(self.router, target, min(self.config.ksize, MAX_CONTACTS), exclude=sender)

    # -- calls --------------------------------------------------------------------------

    async def _call(
        self, node: Node, name: str, *args: Any, pubkey: Callable[[Any], bytes] | None = None
    ) -> RPCResult:
        """``request`` to ``node``, noting success or failure; ``pubkey`` reads from the
        reply the key of a responder that answered a challenge in it."""
        address = (node.ip, node.port)
        result = await self.request(address, name, self.wire_id, *args)
        key = pubkey(result.value) if result.ok and pubkey is not None else b""
        if key:
            # It signed our fresh nonce at this address, as a pong (``call_ping``).
            self._prove(address)
            proven = node_id_of(key)
            self._proven_at(address, proven)
            if proven != node.id:
                # Another id answers at this address: the contact we were handed is
                # made up (S/Kademlia §4.1), so its answer counts for nothing.
                self.metrics.inc("lookup.unproven_id")
                return RPCResult(False, reason="unproven_id")
            self._failures.pop(node.id, None)
            if self.router.contact(node.id) is not None or self.router.has_room_for(node):
                self.admit(node, key)
        elif result.ok:
            self.note_success(node)
        elif result.reason in ("timeout", "unsent"):
            self.note_failure(node)
        else:
            self.note_failure(node, evict=True)  # it answered garbage
        return result

    async def call_ping(
        self, address: Address, *, why: str = "other", enter: bool = True, prove: bool = True
    ) -> Node | None:
        """Challenge ``address``; on a validly signed pong admit the responder and return it.

        ``why`` names the purpose in the ``ping.why.<why>`` counter (the put's cost
        breakdown in scripts/bench/network.py); ``enter`` False admits the responder
        only if it is known or its bucket has room (see ``verify_later``). ``prove``: sign
        the token we echo, so that the responder need not challenge us back."""
        self.metrics.inc(f"ping.why.{why}")
        nonce = os.urandom(NONCE_BYTES)
        token = self._received_tokens.get(address, b"")
        proof = b""
        if prove and self.wire_id and self.signing_key is not None and self._fresh_token(address):
            # Our id, proved over its token: it need not challenge us back.
            proof = self.signing_key.sign(token_proof_message(token, self.wire_id))
        result = await self.request(
            address, PING, self.wire_id, self.wire_key, nonce, *address, token, proof
        )
        if not result.ok:
            if result.reason == "bad_challenge":
                self.metrics.inc("routing.refused.bad_challenge")
            known = self._known_at(address)
            if known is not None:
                self.note_failure(known, evict=result.reason not in ("timeout", "unsent"))
            return None
        pong: Pong = result.value
        # The echo proved our address if the token was surely valid: fresh, or the very
        # token it mints now (same secret). A rotated-away one proved nothing: the pong's
        # new token goes in the next echo.
        echoed = self._fresh(address, token) or (bool(token) and pong.token == token)
        self._note_token(address, pong.token)
        if echoed:
            self._presented_now(address)
        node = Node(pong.node_id, address[0], address[1])
        if pong.node_id == self.source_node.id:
            return None  # we pinged ourselves
        # It signed our fresh nonce at this address: the address is proven as well.
        self._prove(address)
        self._proven_at(address, node.id)
        if enter or self.router.contact(node.id) is not None or self.router.has_room_for(node):
            self.admit(node, pong.pubkey)
        return node

    def _proven_at(self, address: Address, node_id: bytes) -> None:
        """Remember that ``node_id`` answered a signed challenge at ``address`` just now."""
        self._ids_at[address] = (node_id, loop_time())
        self._ids_at.move_to_end(address)
        while len(self._ids_at) > _PROVEN_MEMORY:
            self._ids_at.popitem(last=False)

    def _forged(self, node: Node) -> bool:
        """True if another id than ``node``'s proved itself at its address less than
        ``_CLAIM_MEMORY`` s ago: a made-up contact (one endpoint is one node)."""
        held = self._ids_at.get((node.ip, node.port))
        return held is not None and held[0] != node.id and loop_time() - held[1] < _CLAIM_MEMORY

    def _challenge_for(self, node: Node, rpc: str) -> tuple[Any, ...] | None:
        """The challenge arguments a lookup's query to ``node`` carries: a fresh one for an
        id not proven at its address (its answer rides on the reply, S/Kademlia §4.1);
        none for a contact there, or for an id proven there lately whose answer would not
        enter the table anyway; None for a made-up contact (``_forged``: do not ask)."""
        known = self.router.contact(node.id)
        if known is not None and known.same_home_as(node):
            return ()
        held = self._ids_at.get((node.ip, node.port))
        if held is not None and held[0] == node.id and not self.router.has_room_for(node):
            return ()
        if self._forged(node):
            self.metrics.inc("lookup.refused.address_taken")
            return None
        self.metrics.inc(f"ping.why.in_{rpc}")
        return (os.urandom(NONCE_BYTES), node.ip, node.port)

    def _usable(self, contacts: list[Node]) -> list[Node]:
        """Drop contacts whose ids fail the static puzzle (S/Kademlia §4.1), and those
        claiming an id at an address that proved another one lately (``_forged``)."""
        bits = self.config.puzzle_bits
        kept = contacts
        if bits > 0:
            kept = [n for n in contacts if passes_puzzle(n.id, bits)]
            if len(kept) != len(contacts):
                self.metrics.inc("lookup.refused.puzzle", len(contacts) - len(kept))
        if self._ids_at:
            claimed = [n for n in kept if not self._forged(n)]
            if len(claimed) != len(kept):
                self.metrics.inc("lookup.refused.address_taken", len(kept) - len(claimed))
                kept = claimed
        return kept

    async def call_find_node(self, node: Node, target: bytes) -> list[Node] | None:
        """Ask ``node`` for its closest contacts to ``target``; None if it failed."""
        address = (node.ip, node.port)
        challenge = self._challenge_for(node, FIND_NODE)
        if challenge is None:
            return None
        token = self._token_arg(address, PAD_BYTES)
        result = await self._call(node, FIND_NODE, target, token, *challenge, pubkey=_found_key)
        if not result.ok:
            return None
        if len(token) == TOKEN_BYTES:
            self._presented_now(address)  # a fresh token (``_token_arg``): surely valid
        found: FoundNodes = result.value
        self._note_token(address, found.token)
        return self._usable(found.nodes)

    async def call_find_value(
        self, node: Node, key: bytes, cursor: bytes = b""
    ) -> ValuePage | None:
        """Ask ``node`` for one page of records under ``key``; None if it failed.

        A page trimmed for an unproven asker is asked again once, with the token.
        """
        address = (node.ip, node.port)
        page: ValuePage | None = None
        for _ in range(2):
            challenge = self._challenge_for(node, FIND_VALUE)
            if challenge is None:
                return None
            token = self._token_arg(address, PAD_BYTES)
            result = await self._call(
                node, FIND_VALUE, key, cursor, token, *challenge, pubkey=_page_key
            )
            if not result.ok:
                return None
            page = result.value
            assert page is not None
            self._note_token(address, page.token)
            if len(token) == TOKEN_BYTES:
                self._presented_now(address)
            if not page.retry or len(token) == TOKEN_BYTES:
                break
        assert page is not None
        if page.nodes:
            usable = self._usable(page.nodes)
            if usable is not page.nodes or page.retry:
                page = ValuePage(page.records, page.next, usable, page.token)
        return page

    def presented(self, address: Address) -> bool:
        """True if ``address`` saw our token (or our answer to its challenge) lately."""
        until = self._presented.get(address)
        return until is not None and until > loop_time()

    async def present_token(self, address: Address) -> bool:
        """Make sure ``address`` has seen our token lately (at most two pings); False if
        it went silent. Callers at the same time share one presentation."""
        if self.presented(address):
            return True
        presented: bool = await asyncio.shield(self.start_presenting(address))
        return presented

    def start_presenting(self, address: Address) -> asyncio.Task[Any]:
        """The presentation of our token to ``address`` under way, started if none is."""
        pending = self._presenting.get(address)
        if pending is None:
            pending = self.tasks.spawn(self._present(address), name="present")
            self._presenting[address] = pending
            pending.add_done_callback(lambda _: self._presenting.pop(address, None))
        return pending

    async def _present(self, address: Address) -> bool:
        self.metrics.inc("present.started")
        for _ in range(2):
            if self.presented(address):
                return True
            if await self.call_ping(address, why="present") is None:
                return False
        return True

    async def call_store(
        self, node: Node, key: bytes, raws: list[bytes]
    ) -> list[bool | str] | None:
        """Offer encoded records to ``node``; per record True or a refusal code; None if silent.

        The receiver takes STOREs only from addresses that echoed its token (BEP 5). A
        token it handed us less than a token period ago goes in the STORE itself, with
        our signature over it when the receiver may not know our id yet (its proof,
        ``rpc_store``); without one, a ping presents ours first. A "token" refusal is
        retried once, and so is a STORE that timed out: a lost datagram must not leave
        a replica without the record (no put is retried above this).
        """
        address = (node.ip, node.port)
        token_retry = timeout_retry = True
        while True:
            proof = self._token_proof(address)
            if not proof:
                if not self.presented(address):
                    self.metrics.inc("store.waited_present")
                await self.present_token(address)
            result = await self._call(node, STORE, key, raws, *proof)
            if not result.ok:
                if result.reason == "timeout" and timeout_retry:
                    timeout_retry = False
                    self.metrics.inc("store.retry.timeout")
                    continue
                return None
            value: list[bool | str] = result.value
            if token_retry and value and all(v == TOKEN_REFUSAL for v in value):
                token_retry = False
                self.metrics.inc("store.retry.token")
                self._presented.pop(address, None)
                self._received_tokens.pop(address, None)
                continue
            if proof:
                self._presented_now(address)
            return value

    def _token_proof(self, address: Address) -> tuple[bytes, ...]:
        """The trailing STORE arguments for ``address``: (token, key, signature), or
        (token, b"", b"") when it saw our token or our signature lately (or we have no
        id), or () when we hold no token of its that is surely valid."""
        token = self._fresh_token(address)
        if not token:
            return ()
        if not self.wire_id or self.signing_key is None or self.presented(address):
            return (token, b"", b"")
        signature = self.signing_key.sign(token_proof_message(token, self.wire_id))
        return (token, self.wire_key, signature)

    def _known_at(self, address: Address) -> Node | None:
        for node in self.router.all_contacts():
            if same_address((node.ip, node.port), address):
                return node
        return None

    def get_refresh_ids(self, age: float | None = None) -> list[bytes]:
        """Random ids in each bucket not used for ``age`` seconds (§2.3)."""
        age = self.config.refresh_interval if age is None else age
        return [
            self.rng.randint(*b.range).to_bytes(NODE_ID_BYTES, "big")
            for b in self.router.lonely_buckets(age)
        ]

    # Replaced by checked calls above; rpcudp's remote-call magic is disabled.
    def rpc_stun(self, sender: Address) -> None:  # pragma: no cover - not an RPC here
        raise Dropped("unknown_rpc", "stun")

    def handle_call_response(self, result: Any, node: Node) -> Any:  # pragma: no cover
        # kademlia's reply hook (it removes silent nodes and welcomes answering ones)
        # must never run: _call tracks replies, and admission needs a signed challenge.
        raise AssertionError("DHTProtocol tracks replies in _call")

    async def stop(self) -> None:
        """Cancel tracked tasks and close the socket."""
        for handle in self._awaiting.values():
            handle.cancel()
        self._awaiting.clear()
        await self.tasks.cancel_all()
        self.close()
