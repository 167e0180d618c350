"""fairdht's Kademlia protocol: four checked RPCs on the hardened rpcudp path.

``DHTProtocol`` subclasses kademlia's ``KademliaProtocol`` (for its routing-table and
refresh machinery) through ``HardenedRPCProtocol`` (for the checked datagram path),
and replaces every RPC (docs/protocol.md, "RPCs"):

- ``ping(sender_id, sender_pubkey) -> [node_id, pubkey]``: ids are BLAKE2b-160 of the
  Ed25519 key (DESIGN.md pitfall 10); a ping is how a contact proves its key.
- ``store(sender_id, key, [record, ...]) -> [True | refusal code, ...]``: every record
  is validated (pitfall 1), then the store applies the slot rule and quotas.
- ``find_node(sender_id, target) -> [[id, ip, port], ...]``.
- ``find_value(sender_id, key, cursor) -> {"records", "next", "nodes"}``: one page of
  whole records per reply, at most one datagram (pitfall 6).

Which contacts may enter the routing table is decided in one place, ``admit``.
"""

from __future__ import annotations

import logging
import random
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from kademlia.node import Node
from kademlia.protocol import KademliaProtocol

from fairdht.dht.config import DHTConfig
from fairdht.dht.metrics import Metrics
from fairdht.dht.routing import DHTRoutingTable
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
from fairdht.dht.storage import RecordStore
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
from fairdht.identity import NODE_ID_BYTES, node_id_of
from fairdht.records import KEY_BYTES, Record, check_time, validate_record

__all__ = [
    "FIND_NODE",
    "FIND_VALUE",
    "MAX_CONTACTS",
    "MAX_CURSOR_BYTES",
    "MAX_PAGE_RECORDS",
    "MAX_STORE_RECORDS",
    "PING",
    "PUBKEY_BYTES",
    "REFUSAL_CODES",
    "STORE",
    "STORE_BUDGET",
    "DHTProtocol",
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
# Request bytes left for records in one STORE: the datagram minus header and the
# framing of ["store", [sender_id, key, [...]]] (under 64 bytes), minus 3 per record.
STORE_BUDGET: Final = MAX_DATAGRAM - HEADER_BYTES - 64
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
        "error",
    ]
)


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


def _check_records(value: Any) -> None:
    if (
        not isinstance(value, list)
        or not 1 <= len(value) <= MAX_STORE_RECORDS
        or not all(isinstance(r, bytes) for r in value)
    ):
        raise Dropped("bad_args", f"records must be a list of 1..{MAX_STORE_RECORDS} bin")


def _check_cursor(value: Any) -> None:
    if not isinstance(value, bytes) or len(value) > MAX_CURSOR_BYTES:
        raise Dropped("bad_args", f"cursor must be bin of at most {MAX_CURSOR_BYTES} bytes")


# -- reply parsers (each raises Dropped) ------------------------------------------------


def _parse_contact(item: Any) -> Node:
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


def _parse_ping_reply(value: Any, args: tuple[Any, ...]) -> tuple[bytes, bytes]:
    if not isinstance(value, list) or len(value) != 2:
        raise Dropped("bad_reply", "ping reply is [node_id, pubkey]")
    node_id, pubkey = value
    if not isinstance(node_id, bytes) or len(node_id) != NODE_ID_BYTES:
        raise Dropped("bad_node_id", "ping reply id must be 20 bytes")
    if not isinstance(pubkey, bytes) or len(pubkey) != PUBKEY_BYTES:
        raise Dropped("bad_reply", "ping reply key must be 32 bytes")
    if node_id_of(pubkey) != node_id:
        raise Dropped("bad_identity", "node id is not BLAKE2b-160 of the key")
    return node_id, pubkey


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


def _parse_find_node_reply(value: Any, args: tuple[Any, ...]) -> list[Node]:
    return parse_contacts(value)


@dataclass(frozen=True, slots=True)
class ValuePage:
    """One find_value reply: encoded records (unvalidated), the next cursor, contacts."""

    records: list[bytes]
    next: bytes | None
    nodes: list[Node]


def _parse_find_value_reply(value: Any, args: tuple[Any, ...]) -> ValuePage:
    if not isinstance(value, dict):
        raise Dropped("bad_reply", "find_value reply is a map")
    records = value.get("records")
    nxt = value.get("next")
    if (
        not isinstance(records, list)
        or len(records) > MAX_PAGE_RECORDS
        or not all(isinstance(r, bytes) for r in records)
    ):
        raise Dropped("bad_reply", "records must be a list of bin")
    if nxt is not None:
        cursor = args[2]
        if not isinstance(nxt, bytes) or not 0 < len(nxt) <= MAX_CURSOR_BYTES or nxt <= cursor:
            raise Dropped("bad_reply", "next must be a cursor after the one asked")
        if not records:
            raise Dropped("bad_reply", "a page with a next cursor must carry records")
    return ValuePage(records, nxt, parse_contacts(value.get("nodes", [])))


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
        PING: RPCSpec(PING, (_check_sender_id, _check_pubkey), _parse_ping_reply),
        STORE: RPCSpec(STORE, (_check_sender_id, _check_key, _check_records), _parse_store_reply),
        FIND_NODE: RPCSpec(FIND_NODE, (_check_sender_id, _check_key), _parse_find_node_reply),
        FIND_VALUE: RPCSpec(
            FIND_VALUE, (_check_sender_id, _check_key, _check_cursor), _parse_find_value_reply
        ),
    }

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
    ) -> None:
        HardenedRPCProtocol.__init__(self, metrics=metrics, timeout=config.rpc_timeout)
        self.config = config
        self.client_mode = config.client_mode
        self.serving = not config.client_mode
        self.source_node = Node(node_id)
        self.public_key = public_key
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
        self._head_checks: set[bytes] = set()

    # -- routing-table admission (the one place; issue 9 adds challenges and /24 limits) --

    def admit(self, node: Node, pubkey: bytes | None = None) -> bool:
        """Let ``node`` into the routing table if it may enter; True if it is (now) there.

        A contact enters only with a key that hashes to its id (learned from its ping
        or its pong). A claimed id without a key refreshes a matching contact, or starts
        one identity-check ping; light clients (empty id) and our own id never enter.
        """
        if len(node.id) != NODE_ID_BYTES or node.id == self.source_node.id:
            return False
        if node.ip is None or node.port is None:
            return False
        if pubkey is None:
            known = self.router.contact(node.id)
            if known is not None and known.same_home_as(node):
                self.router.add_contact(known)  # moves it to the bucket's tail (§2.2)
                return True
            if known is None and not self.router.has_room_for(node):
                return False  # its bucket is full: no identity check for a spare
            self.verify_later((node.ip, node.port))
            return False
        if node_id_of(pubkey) != node.id:
            self.metrics.inc("dropped.bad_identity")
            return False
        known = self.router.contact(node.id)
        if known is not None and not known.same_home_as(node):
            # Same key, new address: the key proved itself at the new one.
            self.router.remove_contact(known)
        self._failures.pop(node.id, None)
        self.router.add_contact(node)
        entered = known is None and self.router.contact(node.id) is not None
        if entered:
            self.metrics.inc("routing.added")
            if self.on_new_contact is not None:
                self.on_new_contact(node)
        return self.router.contact(node.id) is not None

    def welcome_if_new(self, node: Node) -> None:
        """kademlia's hook: here, an unverified sighting of ``node`` (see ``admit``)."""
        self.admit(node)

    def verify_later(self, address: Address) -> None:
        """Ping ``address`` once (bounded, deduplicated) so its pong can admit it."""
        if address in self._verifying:
            return
        if len(self._verifying) >= self.config.max_verify_in_flight:
            self.metrics.inc("routing.verify_skipped")
            return
        self._verifying.add(address)
        self.tasks.spawn(self._verify(address), name="verify")

    async def _verify(self, address: Address) -> None:
        try:
            await self.call_ping(address)
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
            if await self.call_ping((head.ip, head.port)) is None:
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
            self.metrics.inc("routing.evicted")
        else:
            self._failures[node.id] = count

    def _note_sender(self, sender_id: bytes, address: Address) -> Node | None:
        if not sender_id:
            return None  # a light client: never a contact, never handed replicas
        node = Node(sender_id, address[0], address[1])
        self.admit(node)
        return node

    # -- RPC handlers ---------------------------------------------------------------------

    def rpc_ping(self, sender: Address, sender_id: bytes, pubkey: bytes) -> list[bytes]:
        """Answer with our id and key; a full node's ping admits it (its key is checked)."""
        if bool(sender_id) != bool(pubkey):
            raise Dropped("bad_args", "ping sends both id and key, or neither")
        if sender_id:
            if node_id_of(pubkey) != sender_id:
                raise Dropped("bad_identity", "sender id is not BLAKE2b-160 of its key")
            self.admit(Node(sender_id, sender[0], sender[1]), pubkey)
        return [self.wire_id, self.wire_key]

    def rpc_store(
        self, sender: Address, sender_id: bytes, key: bytes, raws: list[bytes]
    ) -> list[bool | str]:
        """Validate and store each record; answer True or its refusal code, in order."""
        self._note_sender(sender_id, sender)
        now = self.clock()
        results: list[bool | str] = []
        for raw in raws:
            try:
                record = self.records.validate(raw, now=now, key=key)
                self.storage.put(key, record, now=now)
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

    def rpc_find_node(self, sender: Address, sender_id: bytes, target: bytes) -> list[list[Any]]:
        """The k closest contacts we know to ``target``, never the asker itself."""
        self._note_sender(sender_id, sender)
        return [contact_wire(n) for n in self._neighbors(target, sender)]

    def rpc_find_value(
        self, sender: Address, sender_id: bytes, key: bytes, cursor: bytes
    ) -> dict[str, Any]:
        """One page of the records under ``key`` after ``cursor``, plus contacts on page one."""
        self._note_sender(sender_id, sender)
        now = self.clock()
        held = self.storage.get(key, now=now, include_withdrawn=True)
        nodes = [] if cursor else [contact_wire(n) for n in self._neighbors(key, sender)]
        budget = MAX_DATAGRAM - HEADER_BYTES - _PAGE_OVERHEAD - len(pack(nodes))
        page: list[bytes] = []
        last: Record | None = None
        nxt: bytes | None = None
        for record in sorted(held, key=cursor_of):
            if cursor and cursor_of(record) <= cursor:
                continue
            size = _bin_size(len(record.raw))
            if last is not None and (size > budget or len(page) >= MAX_PAGE_RECORDS):
                nxt = cursor_of(last)
                break
            page.append(record.raw)
            last = record
            budget -= size
        return {"records": page, "next": nxt, "nodes": nodes}

    def _neighbors(self, target: bytes, sender: Address) -> list[Node]:
        asker = Node(bytes(NODE_ID_BYTES), sender[0], sender[1])
        nodes: list[Node] = self.router.find_neighbors(
            Node(target), k=min(self.config.ksize, MAX_CONTACTS), exclude=asker
        )
        return nodes

    # -- calls --------------------------------------------------------------------------

    async def _call(self, node: Node, name: str, *args: Any) -> RPCResult:
        result = await self.request((node.ip, node.port), name, self.wire_id, *args)
        if result.ok:
            self.note_success(node)
        elif result.reason in ("timeout", "unsent"):
            self.note_failure(node)
        else:
            self.note_failure(node, evict=True)  # it answered garbage
        return result

    async def call_ping(self, address: Address) -> Node | None:
        """Ping ``address``; on a valid pong admit the responder and return it."""
        result = await self.request(address, PING, self.wire_id, self.wire_key)
        if not result.ok:
            known = self._known_at(address)
            if known is not None:
                self.note_failure(known, evict=result.reason not in ("timeout", "unsent"))
            return None
        node_id, pubkey = result.value
        node = Node(node_id, address[0], address[1])
        if node_id == self.source_node.id:
            return None  # we pinged ourselves
        self.admit(node, pubkey)
        return node

    async def call_find_node(self, node: Node, target: bytes) -> list[Node] | None:
        """Ask ``node`` for its closest contacts to ``target``; None if it failed."""
        result = await self._call(node, FIND_NODE, target)
        return result.value if result.ok else None

    async def call_find_value(
        self, node: Node, key: bytes, cursor: bytes = b""
    ) -> ValuePage | None:
        """Ask ``node`` for one page of records under ``key``; None if it failed."""
        result = await self._call(node, FIND_VALUE, key, cursor)
        return result.value if result.ok else None

    async def call_store(
        self, node: Node, key: bytes, raws: list[bytes]
    ) -> list[bool | str] | None:
        """Offer encoded records to ``node``; per record True or a refusal code; None if silent."""
        result = await self._call(node, STORE, key, raws)
        return result.value if result.ok else None

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
        raise NotImplementedError("DHTProtocol tracks replies in _call")

    async def stop(self) -> None:
        """Cancel tracked tasks and close the socket."""
        await self.tasks.cancel_all()
        self.close()
