"""Reachability probes of announced addresses: wire format, verification, rate-limit table.

Sans-IO (time comes in as ``now``; docs/serverlist.md §1.11). A node sends a small
padded challenge to an announced ``IP:PORT``; whoever answers there signs the nonce and
the address with the announcement's author key. The reply is at most 3x the probe
(RFC 9000 §8.1's anti-amplification limit), so neither side can be used to multiply
traffic towards a spoofed source; the ``ProbeTable`` sends each address at most one
probe a minute, so fake announcements cannot turn nodes into a flood against a victim.

::

    probe (41 bytes)  = MAGIC(8) ‖ 0x01 ‖ nonce(16) ‖ zero padding(16)
    reply (121 bytes) = MAGIC(8) ‖ 0x02 ‖ nonce(16) ‖ author(32) ‖ sig(64)
    sig = Ed25519(author, "fairdht/probe-reply/v1" ‖ nonce ‖ u8 len(address) ‖ address)
"""

from __future__ import annotations

import hmac
import math
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

from fairdht.errors import BadSignature, ProtocolError
from fairdht.identity.keys import PublicKey, SigningKey

__all__ = [
    "MAGIC",
    "MAX_BACKOFF",
    "MIN_INTERVAL",
    "NONCE_BYTES",
    "PROBE_SIZE",
    "PROBE_TIMEOUT",
    "REFRESH_AFTER",
    "REPLY_SIZE",
    "RESULT_TTL",
    "TABLE_SIZE",
    "ProbeError",
    "ProbeReply",
    "ProbeResponder",
    "ProbeRow",
    "ProbeTable",
    "answer_probe",
    "decode_probe",
    "decode_reply",
    "encode_probe",
    "encode_reply",
    "is_probe",
    "reply_message",
    "verify_reply",
]

# 0xFF first, like Quake-family out-of-band packets, so a game server can tell a probe
# from its own traffic with one comparison; then "FDHTP" and a format version.
MAGIC = b"\xffFDHTP\x00\x01"
_PROBE, _REPLY = 1, 2
NONCE_BYTES = 16
_DOMAIN = b"fairdht/probe-reply/v1"
REPLY_SIZE = len(MAGIC) + 1 + NONCE_BYTES + 32 + 64
# RFC 9000 §8.1: an unproven peer may be sent at most 3x what it sent. The probe is
# padded to the smallest size that keeps the reply within that, and no larger: the
# victim of a fake announcement receives exactly PROBE_SIZE bytes per probe.
PROBE_SIZE = max(len(MAGIC) + 1 + NONCE_BYTES, math.ceil(REPLY_SIZE / 3))

MIN_INTERVAL = 60.0  # a node probes one address at most once a minute (issue 9)
REFRESH_AFTER = 300.0  # an answering address is re-proven every 5 min (announce period)
MAX_BACKOFF = 600.0  # an address that never answers is retried at most every 10 min
RESULT_TTL = 900.0  # a result older than one announcement lifetime means "unknown"
PROBE_TIMEOUT = 2.0
TABLE_SIZE = 4096


class ProbeError(ProtocolError):
    """A probe or probe reply is malformed, unexpected or forged; ``reason`` is a counter label."""

    code = "probe"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ProbeReply:
    """A decoded (not yet verified) reply: the nonce it answers, the key and its signature."""

    nonce: bytes
    author: bytes
    sig: bytes


def is_probe(datagram: bytes) -> bool:
    """True when ``datagram`` starts like a fairdht probe (a game server's cheap demux)."""
    return len(datagram) > len(MAGIC) and datagram.startswith(MAGIC) and datagram[8] == _PROBE


def encode_probe(nonce: bytes) -> bytes:
    """The probe datagram carrying ``nonce`` (16 random bytes), padded to PROBE_SIZE."""
    if len(nonce) != NONCE_BYTES:
        raise ValueError("a probe nonce is 16 bytes")
    head = MAGIC + bytes([_PROBE]) + nonce
    return head + bytes(PROBE_SIZE - len(head))


def decode_probe(datagram: bytes) -> bytes:
    """The nonce of a probe; ProbeError unless it is exactly a padded probe."""
    if len(datagram) != PROBE_SIZE:
        # A short probe would let a spoofer get more than 3x back (RFC 9000 §8.1).
        raise ProbeError("probe_size", f"a probe is {PROBE_SIZE} bytes, got {len(datagram)}")
    if not datagram.startswith(MAGIC) or datagram[8] != _PROBE:
        raise ProbeError("probe_magic", "not a fairdht probe")
    if any(datagram[9 + NONCE_BYTES :]):
        raise ProbeError("probe_padding", "probe padding is not zero")
    return datagram[9 : 9 + NONCE_BYTES]


def reply_message(nonce: bytes, address: str) -> bytes:
    """The bytes a reply signs: domain, nonce and the announced address (UTF-8, u8 length)."""
    raw = address.encode()
    if len(raw) > 255:
        raise ValueError("address too long")
    return _DOMAIN + nonce + bytes([len(raw)]) + raw


def encode_reply(key: SigningKey, nonce: bytes, address: str) -> bytes:
    """The reply proving ``key`` answers at ``address`` for ``nonce``."""
    sig = key.sign(reply_message(nonce, address))
    return MAGIC + bytes([_REPLY]) + nonce + key.public_key.raw + sig


def decode_reply(datagram: bytes) -> ProbeReply:
    """Split a reply; ProbeError unless it has the exact reply layout (not yet verified)."""
    if len(datagram) != REPLY_SIZE:
        raise ProbeError("reply_size", f"a probe reply is {REPLY_SIZE} bytes")
    if not datagram.startswith(MAGIC) or datagram[8] != _REPLY:
        raise ProbeError("reply_magic", "not a fairdht probe reply")
    nonce = datagram[9:25]
    return ProbeReply(nonce, datagram[25:57], datagram[57:])


def verify_reply(
    reply: ProbeReply, *, nonce: bytes, address: str, authors: frozenset[bytes]
) -> bytes:
    """Return the proven author; ProbeError for a wrong nonce, an unknown key or a bad signature."""
    if not hmac.compare_digest(reply.nonce, nonce):
        raise ProbeError("wrong_nonce", "the reply answers another probe")
    if reply.author not in authors:
        raise ProbeError(
            "wrong_key", "the reply is signed by a key that did not announce this address"
        )
    try:
        PublicKey(reply.author).verify(reply_message(nonce, address), reply.sig)
    except BadSignature:
        raise ProbeError("bad_signature", "the reply's signature does not verify") from None
    return reply.author


def answer_probe(datagram: bytes, key: SigningKey, address: str) -> bytes:
    """The reply a game server sends back for a probe received on its announced ``address``.

    ``address`` is the announced ``IP:PORT`` exactly as published. Raises ProbeError
    when ``datagram`` is not a valid probe (send nothing then). Use ``ProbeResponder``
    to also rate-limit replies per source.
    """
    return encode_reply(key, decode_probe(datagram), address)


@dataclass(slots=True)
class _Window:
    start: float
    count: int = 0


class ProbeResponder:
    """Answers probes for one announced address, at most ``per_source`` a minute per source IP.

    Replies are under 3x a probe, so a spoofed probe gains an attacker little; the
    limits (per source IP per minute, and in total per second) bound even that and the
    signing work. The table of sources is bounded: when it is full of sources still in
    their minute, new sources are refused (fail closed).
    """

    def __init__(
        self,
        key: SigningKey,
        address: str,
        *,
        per_source: int = 6,
        per_second: int = 100,
        max_sources: int = 4096,
    ) -> None:
        self.key = key
        self.address = address
        self.per_source = per_source
        self.per_second = per_second
        self.max_sources = max_sources
        self.counters: Counter[str] = Counter()
        self._sources: OrderedDict[str, _Window] = OrderedDict()
        self._second = _Window(-1.0)

    def answer(self, datagram: bytes, source_ip: str, now: float) -> bytes | None:
        """The reply to send to ``source_ip``, or None (not a probe, or over a limit; counted)."""
        try:
            nonce = decode_probe(datagram)
        except ProbeError as exc:
            self.counters["dropped." + exc.reason] += 1
            return None
        if now - self._second.start >= 1.0:
            self._second = _Window(now)
        window = self._sources.get(source_ip)
        if window is None or now - window.start >= 60.0:
            if window is None and len(self._sources) >= self.max_sources:
                oldest = next(iter(self._sources.values()))
                if now - oldest.start < 60.0:
                    self.counters["refused.table_full"] += 1
                    return None
                self._sources.popitem(last=False)
            window = _Window(now)
            self._sources[source_ip] = window
        self._sources.move_to_end(source_ip)
        if window.count >= self.per_source:
            self.counters["refused.per_source"] += 1
            return None
        if self._second.count >= self.per_second:
            self.counters["refused.per_second"] += 1
            return None
        window.count += 1
        self._second.count += 1
        self.counters["answered"] += 1
        return encode_reply(self.key, nonce, self.address)


@dataclass(frozen=True, slots=True)
class ProbeRow:
    """One address's saved state (a light client keeps it between runs, so its rate holds)."""

    address: str
    last_sent: float
    finished_at: float | None
    failures: int
    probed_authors: frozenset[bytes]
    proven: frozenset[bytes]


@dataclass(slots=True)
class _Slot:
    """What a node knows about one address: its last probe and who proved it."""

    authors: frozenset[bytes] = frozenset()
    last_sent: float | None = None
    probed_authors: frozenset[bytes] = frozenset()
    nonce: bytes | None = None
    deadline: float = 0.0
    finished_at: float | None = None
    failures: int = 0
    proven: dict[bytes, float] = field(default_factory=dict)


class ProbeTable:
    """Which addresses to probe when, the outstanding nonces and the cached results.

    Per address at most one probe per ``min_interval`` seconds, ever: the table is
    bounded (LRU), but an entry is evicted only once its last probe is older than
    ``min_interval``; while every entry is that fresh, new addresses wait (counted
    ``skipped.table_full``). An address that answered is re-proven after
    ``refresh_after``; one that did not is retried with exponential backoff (from
    ``min_interval`` up to ``max_backoff``), sooner only when a new key announces it.
    Results older than ``result_ttl`` read as unknown.
    """

    def __init__(
        self,
        *,
        capacity: int = TABLE_SIZE,
        min_interval: float = MIN_INTERVAL,
        refresh_after: float = REFRESH_AFTER,
        max_backoff: float = MAX_BACKOFF,
        result_ttl: float = RESULT_TTL,
        timeout: float = PROBE_TIMEOUT,
    ) -> None:
        if capacity < 1 or min_interval <= 0 or timeout <= 0:
            raise ValueError("capacity, min_interval and timeout must be positive")
        self.capacity = capacity
        self.min_interval = min_interval
        self.refresh_after = max(refresh_after, min_interval)
        self.max_backoff = max(max_backoff, min_interval)
        self.result_ttl = result_ttl
        self.timeout = timeout
        self.counters: Counter[str] = Counter()
        self._slots: OrderedDict[str, _Slot] = OrderedDict()

    def __len__(self) -> int:
        return len(self._slots)

    def _next_at(self, slot: _Slot) -> float:
        assert slot.last_sent is not None
        if slot.failures == 0:
            wait = self.refresh_after
        else:
            wait = min(self.min_interval * 2 ** (slot.failures - 1), self.max_backoff)
        return slot.last_sent + wait

    def due(self, address: str, authors: frozenset[bytes], now: float) -> bool:
        """True when a probe of ``address`` (announced by ``authors``) may and should go out now."""
        slot = self._slots.get(address)
        if slot is None or slot.last_sent is None:
            return True
        if slot.nonce is not None or now - slot.last_sent < self.min_interval:
            return False
        if not authors <= slot.probed_authors:
            return True  # a key that was never asked: once a minute is still the floor
        return now >= self._next_at(slot)

    def _make_room(self, now: float) -> bool:
        if len(self._slots) < self.capacity:
            return True
        for address, slot in self._slots.items():  # least recently used first
            if slot.nonce is None and (
                slot.last_sent is None or now - slot.last_sent >= self.min_interval
            ):
                del self._slots[address]
                self.counters["evicted"] += 1
                return True
        return False

    def start(
        self, address: str, authors: frozenset[bytes], nonce: bytes, now: float
    ) -> bytes | None:
        """The probe datagram to send to ``address`` now, or None when not allowed (counted)."""
        if not self.due(address, authors, now):
            self.counters["skipped.rate"] += 1
            return None
        slot = self._slots.get(address)
        if slot is None:
            if not self._make_room(now):
                self.counters["skipped.table_full"] += 1
                return None
            slot = self._slots[address] = _Slot()
        self._slots.move_to_end(address)
        slot.authors = slot.probed_authors = authors
        slot.last_sent = now
        slot.nonce = nonce
        slot.deadline = now + self.timeout
        self.counters["sent"] += 1
        self.counters["bytes_sent"] += PROBE_SIZE
        return encode_probe(nonce)

    def receive(self, datagram: bytes, source: str, now: float) -> bytes:
        """Accept a reply from ``source`` (canonical ``IP:PORT``); return the proven author.

        Raises ProbeError (counted by reason) for anything else: malformed, no probe
        outstanding to that source, late, wrong nonce, wrong key, bad signature.
        """
        try:
            reply = decode_reply(datagram)
            slot = self._slots.get(source)
            if slot is None or slot.nonce is None:
                raise ProbeError("unexpected", "no probe is outstanding to this source")
            if now > slot.deadline:
                raise ProbeError("late", "the reply came after the probe timed out")
            author = verify_reply(reply, nonce=slot.nonce, address=source, authors=slot.authors)
        except ProbeError as exc:
            self.counters["rejected." + exc.reason] += 1
            raise
        slot.nonce = None
        slot.finished_at = now
        slot.failures = 0
        slot.proven = {author: now}
        self.counters["answered"] += 1
        return author

    def expire(self, now: float, *, force: bool = False) -> int:
        """Time out probes past their deadline (all with ``force``); return how many."""
        timed_out = 0
        for slot in self._slots.values():
            if slot.nonce is not None and (force or now > slot.deadline):
                slot.nonce = None
                slot.finished_at = now
                slot.failures += 1
                slot.proven = {}
                timed_out += 1
        self.counters["timed_out"] += timed_out
        return timed_out

    def outstanding(self) -> int:
        """Probes sent and not yet answered or timed out."""
        return sum(1 for s in self._slots.values() if s.nonce is not None)

    def next_deadline(self) -> float | None:
        """When the earliest outstanding probe times out (None: nothing outstanding)."""
        deadlines = [s.deadline for s in self._slots.values() if s.nonce is not None]
        return min(deadlines) if deadlines else None

    def reachable(self, address: str, author: bytes, now: float) -> bool | None:
        """True: ``author`` proved ``address``; False: probed, not proven; None: unknown or stale."""
        slot = self._slots.get(address)
        if slot is None or slot.finished_at is None or now - slot.finished_at > self.result_ttl:
            return None
        return author in slot.proven

    def rows(self) -> list[ProbeRow]:
        """Every probed address's state, least recently used first (outstanding probes as sent)."""
        return [
            ProbeRow(
                address,
                s.last_sent,
                s.finished_at,
                s.failures,
                s.probed_authors,
                frozenset(s.proven),
            )
            for address, s in self._slots.items()
            if s.last_sent is not None
        ]

    def load(self, rows: list[ProbeRow]) -> None:
        """Restore saved rows (oldest first); the newest ``capacity`` are kept."""
        for row in rows[-self.capacity :]:
            proven_at = row.finished_at if row.finished_at is not None else row.last_sent
            self._slots[row.address] = _Slot(
                authors=row.probed_authors,
                last_sent=row.last_sent,
                probed_authors=row.probed_authors,
                finished_at=row.finished_at,
                failures=row.failures,
                proven=dict.fromkeys(row.proven, proven_at),
            )
            self._slots.move_to_end(row.address)
        while len(self._slots) > self.capacity:
            self._slots.popitem(last=False)
