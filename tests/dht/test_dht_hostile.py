"""Bad records refused at STORE with their code, and ignored when hostile peers serve them."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any, ClassVar

import pytest
from dhtkit import (
    closest,
    det_key,
    join,
    next_request,
    raw_peer,
    response,
    run,
    server_record,
    start_nodes,
    stop_all,
)
from kademlia.node import Node

from fairdht.dht import DHTNode
from fairdht.dht.protocol import DHTProtocol
from fairdht.dht.rpc import Address
from fairdht.records import Record


def bad_records(good: Record) -> dict[str, bytes]:
    """Encoded records that break one rule each, keyed by the refusal code expected."""
    author = det_key("bad-author")
    now = time.time()
    sig_flipped = good.raw[:-1] + bytes([good.raw[-1] ^ 1])
    return {
        "bad_signature": sig_flipped,
        "expired": server_record(author, now=now - 4000, ttl=60).raw,
        "from_future": server_record(author, b"later", now=now + 3600).raw,
        "too_large": good.raw + b"\x00" * 1100,
        "malformed": b"\x93\x01\x02",
        "not_canonical": b"\xdc\x00\x0a" + good.raw[1:],  # array16 header instead of fixarray
    }


def node_of(node: DHTNode) -> Node:
    return Node(node.node_id, node.address[0], node.address[1])


def test_store_refuses_each_bad_record_with_its_code() -> None:
    async def main() -> None:
        a, b = await start_nodes(2)
        try:
            await join([a, b])
            good = server_record(det_key("author"), seq=100)
            older = server_record(det_key("author"), seq=50, name="replayed")
            other_key = server_record(det_key("someone-else")).key
            bad = bad_records(good)
            reply = await a.protocol.call_store(node_of(b), good.key, [good.raw, *bad.values()])
            assert reply is not None
            assert reply[0] is True
            codes = dict(zip(bad, reply[1:], strict=True))
            assert codes == {code: code for code in bad}
            assert await a.protocol.call_store(node_of(b), good.key, [older.raw]) == ["stale"]
            assert await a.protocol.call_store(node_of(b), other_key, [good.raw]) == ["wrong_key"]
            for code in [*bad, "stale", "wrong_key"]:
                assert b.metrics.get(f"store.refused.{code}") == 1, code
            assert b.store.get(good.key, now=time.time()) == [good]
        finally:
            await stop_all([a, b])

    run(main)


class HostileProtocol(DHTProtocol):
    """Serves every bad record it can, odd contacts, and a ping that lies about its id."""

    payload: ClassVar[list[bytes]] = []

    def rpc_find_value(
        self, sender: Address, sender_id: bytes, key: bytes, cursor: bytes, token: bytes
    ) -> dict[str, Any]:
        reply = super().rpc_find_value(sender, sender_id, key, cursor, token)
        reply["records"] = list(self.payload) + reply["records"]
        return reply

    def rpc_find_node(
        self, sender: Address, sender_id: bytes, target: bytes, token: bytes
    ) -> list[Any]:
        return [[[b"short", "127.0.0.1", 1000]], self._token_for(sender)]


class HostileNode(DHTNode):
    protocol_class = HostileProtocol


def test_reader_ignores_bad_records_served_by_a_hostile_replica() -> None:
    async def main() -> None:
        honest = await start_nodes(5)
        (hostile,) = await start_nodes(1, first=6, node_class=HostileNode)
        nodes = [*honest, hostile]
        try:
            await join(nodes)
            # An author whose record lands closest to the hostile node, so it is read.
            for i in range(500):
                author = det_key(f"target-{i}")
                good = server_record(author, seq=100)
                if closest(nodes, good.key)[0] is hostile:
                    break
            else:
                raise AssertionError("no key close to the hostile node")
            older = server_record(author, seq=50, name="old")
            wrong_key = server_record(det_key("elsewhere")).raw
            HostileProtocol.payload = [*bad_records(good).values(), older.raw, wrong_key]
            await honest[0].put(good)
            reader = honest[4]
            assert await reader.get(good.key) == [good]
            for code in ("bad_signature", "expired", "from_future", "too_large", "malformed"):
                assert reader.metrics.get(f"get.invalid.{code}") >= 1, code
            assert reader.metrics.get("get.invalid.not_canonical") >= 1
            assert reader.metrics.get("get.invalid.wrong_key") >= 1
            # Its bogus contact list is dropped; the lookup goes on without it.
            found = await reader.find_nodes(good.key)
            assert {n.id for n in found} == {n.node_id for n in honest[:4]}
            assert reader.metrics.get("dropped.bad_contact") >= 1
        finally:
            HostileProtocol.payload = []
            await stop_all(nodes)

    run(main)


class LyingPingProtocol(DHTProtocol):
    def rpc_ping(self, sender: Address, sender_id: bytes, *args: Any) -> list[bytes]:
        reply = super().rpc_ping(sender, sender_id, *args)
        return [os.urandom(20), *reply[1:]]


class LyingNode(DHTNode):
    protocol_class = LyingPingProtocol


def test_contact_with_a_key_that_does_not_match_its_id_never_enters() -> None:
    async def main() -> None:
        (honest,) = await start_nodes(1)
        (liar,) = await start_nodes(1, first=2, node_class=LyingNode)
        try:
            with pytest.raises(Exception, match="the bootstrap node did not answer"):
                await honest.bootstrap([liar.address])
            assert honest.peer_count() == 0
            # One per bootstrap round, plus the challenge sent back when the liar's own
            # ping (its challenge of us) claimed a key.
            assert honest.metrics.get("dropped.bad_identity") == 4  # three rounds
        finally:
            await stop_all([honest, liar])

    run(main)


def test_replies_checked_for_address_shape_and_size() -> None:
    async def main() -> None:
        (node,) = await start_nodes(1)
        asked = await raw_peer("127.0.20.1")
        other = await raw_peer("127.0.21.1")
        proto = node.protocol
        target = Node(bytes(20), *asked.address)
        # Plain find_node replies here (a challenged one is test_dht_admission's).
        proto._challenge_for = lambda node, rpc: ()  # type: ignore[method-assign]
        try:
            # A reply from another address is dropped; the real one is then accepted.
            call = asyncio.ensure_future(proto.call_find_node(target, bytes(20)))
            msg_id, src = await next_request(asked, "find_node")
            good = [[[os.urandom(20), "127.0.0.1", 4000]], bytes(8)]
            other.send(response(msg_id, good), src)
            await asyncio.sleep(0.05)
            assert not call.done()
            asked.send(response(msg_id, good), src)
            contacts = await call
            assert contacts is not None and contacts[0].port == 4000
            assert node.metrics.get("dropped.wrong_address") == 1

            bad_replies = {
                "bad_contact": [[[b"12345", "127.0.0.1", 4000]], bytes(8)],  # 5-byte node id
                "bad_reply": {"nodes": []},  # a map where a list belongs
            }
            # A list of contacts without the token (the reply before it had one), a
            # short token: malformed.
            bad_replies_too = ([[os.urandom(20), "127.0.0.1", 4000]], [[], b"\x01"])
            for reason, value in bad_replies.items():
                call = asyncio.ensure_future(proto.call_find_node(target, bytes(20)))
                msg_id, src = await next_request(asked, "find_node")
                asked.send(response(msg_id, value), src)
                assert await call is None
                assert node.metrics.get(f"dropped.{reason}") >= 1, reason
            for value in (
                [[[os.urandom(20), "not-an-ip", 1]], bytes(8)],
                [[[os.urandom(20), "10.0.0.1", 0]], bytes(8)],
                *bad_replies_too,
            ):
                call = asyncio.ensure_future(proto.call_find_node(target, bytes(20)))
                msg_id, src = await next_request(asked, "find_node")
                asked.send(response(msg_id, value), src)
                assert await call is None

            # An oversize reply is dropped unread; the call then times out.
            call = asyncio.ensure_future(proto.call_find_value(target, bytes(20), b""))
            msg_id, src = await next_request(asked, "find_value")
            asked.send(response(msg_id, {"records": [b"x" * 9000]}), src)
            assert await call is None
            assert node.metrics.get("dropped.oversize") == 1
            assert node.metrics.get("rpc.find_value.timeout") == 1

            # A find_value page whose cursor does not advance is refused.
            call = asyncio.ensure_future(proto.call_find_value(target, bytes(20), b"\x05"))
            msg_id, src = await next_request(asked, "find_value")
            page = {"records": [b"r"], "next": b"\x05", "nodes": []}
            asked.send(response(msg_id, page), src)
            assert await call is None
        finally:
            asked.close()
            other.close()
            await stop_all([node])

    run(main)
