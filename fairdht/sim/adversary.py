"""Adversarial nodes for simulations: honest code, hostile wire (issue 9).

An adversary is an ordinary node whose datagrams pass through filters on the
``MemoryNetwork`` (``set_filter``): it joins honestly, enters routing tables, and then
turns hostile when its ``Coalition`` is installed. Filters speak the wire format of
docs/protocol.md (rpcudp framing: ``type ‖ msg_id(20) ‖ msgpack``) and never touch the
node's code, so the same honest implementation is measured under attack. Behaviours,
after the threat model of S/Kademlia (Baumgart & Mies 2007, §3):

- ``drop``: answers pings (stays in tables) but drops every other reply;
- ``corrupt``: acknowledges STOREs and discards them, serves records with broken
  signatures plus garbage, and answers lookups with made-up contacts at dead addresses;
- ``eclipse``: acknowledges and discards STOREs, hides records, and answers every lookup
  with the coalition members closest to the target (itself and its friends);
- ``forge``: like ``eclipse``, but the contacts claim made-up ids right next to the
  target (at coalition addresses), the attack key-bound ids and S/Kademlia's signed
  replies exist to stop (§4.1-4.3).
"""

from __future__ import annotations

import random
from collections import Counter, OrderedDict
from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import Any

import msgpack

from fairdht.sim.memnet import Address, MemoryNetwork

__all__ = ["Behaviour", "Coalition"]

REQUEST = 0x00
RESPONSE = 0x01
_MSG_ID = slice(1, 21)
_HEADER = 21
# Requests remembered per adversary while waiting for the node's reply; bounded so a
# flood of requests that never get replies cannot grow it.
_MAX_PENDING = 4096
# Made-up contacts live here: an address block no simulated node binds (sim_host uses
# 10.<i // 256>.<i % 256>.1 for i < 65536, so 10.x.y.200 is never bound).
_DEAD_HOST_OCTET = 200


class Behaviour(StrEnum):
    """What an adversary does to the replies it sends."""

    DROP = "drop"
    CORRUPT = "corrupt"
    ECLIPSE = "eclipse"
    FORGE = "forge"


def _unpack(data: bytes) -> Any:
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception:  # any undecodable bytes: the honest node will drop them itself
        return None


def _pack(value: Any) -> bytes:
    packed: bytes = msgpack.packb(value, use_bin_type=True)
    return packed


class _Member:
    """The filters of one adversarial node."""

    def __init__(self, coalition: Coalition, node_id: bytes, address: Address) -> None:
        self.coalition = coalition
        self.node_id = node_id
        self.address = address
        self.pending: OrderedDict[bytes, tuple[str, list[Any]]] = OrderedDict()

    def inbound(self, data: bytes, src: Address) -> Iterable[bytes]:
        if len(data) <= _HEADER or data[0] != REQUEST:
            return [data]
        request = _unpack(data[_HEADER:])
        if not (isinstance(request, list) and len(request) == 2 and isinstance(request[1], list)):
            return [data]
        name, args = request
        c = self.coalition
        if name == "store" and len(args) in (3, 6) and isinstance(args[2], list):
            if c.behaviour is Behaviour.DROP:
                c.stats["store_dropped"] += 1
                return []
            # Acknowledge every record and keep none: the lie a put must survive.
            c.stats["store_discarded"] += 1
            reply = bytes([RESPONSE]) + data[_MSG_ID] + _pack([True] * len(args[2]))
            c.net.endpoint(self.address).transport.sendto(reply, src)
            return []
        self.pending[data[_MSG_ID]] = (str(name), args)
        while len(self.pending) > _MAX_PENDING:
            self.pending.popitem(last=False)
        return [data]

    def outbound(self, data: bytes, dst: Address) -> Iterable[bytes]:
        if len(data) <= _HEADER or data[0] != RESPONSE:
            return [data]  # its own requests go out untouched
        asked = self.pending.pop(data[_MSG_ID], None)
        if asked is None:
            return [data]
        name, args = asked
        c = self.coalition
        if name == "ping":
            return [data]
        if c.behaviour is Behaviour.DROP:
            c.stats["reply_dropped"] += 1
            return []
        reply = _unpack(data[_HEADER:])
        target = args[1] if len(args) > 1 and isinstance(args[1], bytes) else b""
        if name == "find_node" and isinstance(reply, list) and len(reply) in (2, 4):
            # Its own contacts; the real token, and its proof when challenged.
            reply = [c.contacts_for(target), *reply[1:]]
        elif name == "find_value" and isinstance(reply, dict):
            reply = c.value_page_for(target, reply)
        else:
            return [data]
        c.stats[f"reply_{c.behaviour}"] += 1
        return [data[:_HEADER] + _pack(reply)]


class Coalition:
    """A set of adversarial nodes acting together; ``install`` turns them hostile."""

    def __init__(
        self,
        net: MemoryNetwork,
        members: Sequence[tuple[bytes, Address]],
        behaviour: Behaviour,
        *,
        seed: int = 0,
        ksize: int = 20,
    ) -> None:
        self.net = net
        self.behaviour = Behaviour(behaviour)
        self.ksize = ksize
        self.rng = random.Random(f"fairdht/sim/adversary|{seed}|{behaviour}")
        self.members = [_Member(self, node_id, address) for node_id, address in members]
        self.stats: Counter[str] = Counter()
        self.installed = False

    def install(self) -> None:
        """Put every member's filters on the network (from now on they misbehave)."""
        for m in self.members:
            self.net.set_filter(m.address, m.outbound, m.inbound)
        self.installed = True

    def uninstall(self) -> None:
        """Remove the filters: the members behave honestly again."""
        for m in self.members:
            self.net.set_filter(m.address, None, None)
        self.installed = False

    def is_member(self, address: Address) -> bool:
        """True if ``address`` belongs to the coalition."""
        return any(m.address == address for m in self.members)

    def contacts_for(self, target: bytes) -> list[list[Any]]:
        """The contact list an adversary answers for ``target``."""
        if self.behaviour is Behaviour.FORGE and len(target) == 20:
            # Ids sharing the target's first 16 bytes: closer than any honest node.
            picks = self.rng.sample(self.members, min(self.ksize, len(self.members)))
            return [[target[:16] + self.rng.randbytes(4), *m.address] for m in picks]
        if self.behaviour in (Behaviour.ECLIPSE, Behaviour.FORGE):
            t = int.from_bytes(target, "big")
            closest = sorted(self.members, key=lambda m: int.from_bytes(m.node_id, "big") ^ t)
            return [[m.node_id, m.address[0], m.address[1]] for m in closest[: self.ksize]]
        return [self._garbage_contact() for _ in range(self.ksize)]

    def value_page_for(self, target: bytes, page: dict[Any, Any]) -> dict[str, Any]:
        """The find_value page an adversary answers instead of ``page``."""
        if self.behaviour in (Behaviour.ECLIPSE, Behaviour.FORGE):
            return {"records": [], "next": None, "nodes": self.contacts_for(target)}
        records = page.get("records")
        held = [r for r in records if isinstance(r, bytes)] if isinstance(records, list) else []
        forged = [self._broken_signature(r) for r in held]
        forged.append(self.rng.randbytes(self.rng.randint(1, 300)))
        self.stats["records_forged"] += len(forged)
        return {"records": forged, "next": None, "nodes": self.contacts_for(target)}

    def _broken_signature(self, raw: bytes) -> bytes:
        # Same envelope, one signature bit flipped: well-formed, but not the author's.
        return raw[:-1] + bytes([raw[-1] ^ 0x01]) if raw else raw

    def _garbage_contact(self) -> list[Any]:
        rng = self.rng
        host = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{_DEAD_HOST_OCTET}"
        return [rng.randbytes(20), host, rng.randrange(1024, 65536)]
