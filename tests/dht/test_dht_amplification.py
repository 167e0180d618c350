"""No amplification, no free writes: the 3x budget, STORE tokens, per-IP rate limits."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from typing import Any, cast

import msgpack
from dhtkit import FAST, det_key, join, run, server_record, start_nodes, stop_all, subkey_in_shard

from fairdht.dht.protocol import PAD_BYTES
from fairdht.dht.rpc import Address


class RawSocket(asyncio.DatagramProtocol):
    """A bare UDP socket that speaks the wire format by hand and measures sizes."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.replies: dict[bytes, bytes] = {}
        self.requests: list[bytes] = []
        self.arrived = asyncio.Event()
        self.received = 0
        self.received_bytes = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.received += 1
        self.received_bytes += len(data)
        if data[:1] == b"\x01":
            self.replies[data[1:21]] = data
        else:
            self.requests.append(data)
        self.arrived.set()

    def send(self, name: str, args: list[Any], to: Address) -> tuple[bytes, int]:
        msg_id = os.urandom(20)
        data = b"\x00" + msg_id + msgpack.packb([name, args], use_bin_type=True)
        assert self.transport is not None
        self.transport.sendto(data, to)
        return msg_id, len(data)

    async def call(self, name: str, args: list[Any], to: Address) -> tuple[int, bytes]:
        """Send one request; return its size and the whole reply datagram."""
        msg_id, size = self.send(name, args, to)
        for _ in range(200):
            if msg_id in self.replies:
                return size, self.replies.pop(msg_id)
            self.arrived.clear()
            await asyncio.wait_for(self.arrived.wait(), 2.0)
        raise AssertionError("no reply")

    async def requests_received(self, count: int) -> list[bytes]:
        """Wait until ``count`` requests arrived (2 s at most between two datagrams)."""
        for _ in range(100):
            if len(self.requests) >= count:
                break
            self.arrived.clear()
            await asyncio.wait_for(self.arrived.wait(), 2.0)
        return self.requests


async def raw_socket(host: str) -> RawSocket:
    loop = asyncio.get_running_loop()
    _, sock = await loop.create_datagram_endpoint(RawSocket, local_addr=(host, 0))
    return sock


def body(reply: bytes) -> Any:
    return msgpack.unpackb(reply[21:])


def test_all_a_node_sends_in_answer_to_one_datagram_is_at_most_three_times_it() -> None:
    """Every request type from a fresh, unproven address, with and without a claimed id:
    the reply plus the challenge ping a claimed id triggers stay within 3x the request."""

    async def main() -> None:
        # A likely writer's challenge waits for its STORE's proof: here only briefly.
        nodes = await start_nodes(
            6, config=dataclasses.replace(FAST, store_proof_wait=0.01), first=100
        )
        socks: list[RawSocket] = []
        try:
            await join(nodes)
            now = time.time()
            records = []
            for i in range(40):
                author = det_key(f"budget-{i}")
                records.append(server_record(author, subkey_in_shard(author, 5), now=now))
            key = records[0].key
            target = nodes[0]
            for record in records:
                target.store.put(key, record, now=now)
            to = target.address
            claimed = det_key("budget-claimed-id")
            sid, spub = claimed.node_id, claimed.public_key.raw
            pad = bytes(PAD_BYTES)
            cases: dict[str, tuple[str, list[Any]]] = {
                "ping": ("ping", [b"", b"", os.urandom(16), *to, b""]),
                "ping+id": ("ping", [sid, spub, os.urandom(16), "x", 1, b""]),
                "find_node": ("find_node", [b"", os.urandom(20), b""]),
                "find_node+id": ("find_node", [sid, os.urandom(20), b""]),
                "find_node+id padded": ("find_node", [sid, os.urandom(20), pad]),
                "find_value": ("find_value", [b"", key, b"", b""]),
                "find_value+id": ("find_value", [sid, key, b"", b""]),
                "find_value+id padded": ("find_value", [sid, key, b"", pad]),
                "store+id": ("store", [sid, key, [records[0].raw]]),
            }
            ratios: dict[str, float] = {}
            answers: dict[str, Any] = {}
            for n, (label, (name, args)) in enumerate(cases.items()):
                # A fresh address per case: nothing proven, no credit left from before.
                raw = await raw_socket(f"127.0.{110 + n}.1")
                socks.append(raw)
                challenges = target.metrics.get("rpc.ping.sent")
                size, reply = await raw.call(name, args, to)
                answers[label] = body(reply)
                await asyncio.sleep(0.05)  # the challenge task runs after the reply
                challenged = target.metrics.get("rpc.ping.sent") - challenges
                await raw.requests_received(challenged)
                # A claimed id is challenged (from what the budget leaves), else nothing.
                assert challenged == (1 if args[0] and name != "store" else 0), label
                assert [body(r)[0] for r in raw.requests] == ["ping"] * challenged, label
                ratios[label] = round(raw.received_bytes / size, 2)
                assert raw.received_bytes <= 3 * size, (label, raw.received_bytes, size)
            # Every case got its answer whole (nothing cut by the backstop), and useful:
            # a padded find_node all 5 other nodes despite its challenge, find_value a
            # token to come back with, the STORE its "token" refusal.
            assert target.metrics.get("dropped.amplification") == 0
            assert len(answers["find_node+id padded"][0]) == 5
            assert len(answers["find_node+id"][0]) >= 1
            for label in ("find_value", "find_value+id", "find_value+id padded"):
                assert len(answers[label]["token"]) == 8, label
            assert answers["find_value+id padded"]["records"]
            assert answers["store+id"] == ["token"]
            print("bytes sent / bytes received, per request:", ratios)
        finally:
            for raw in socks:
                assert raw.transport is not None
                raw.transport.close()
            await stop_all(nodes)

    run(main)


def test_unproven_sources_get_at_most_three_times_their_request() -> None:
    async def main() -> None:
        nodes = await start_nodes(8, config=FAST, first=70)
        raw = await raw_socket("127.0.90.1")
        try:
            await join(nodes)
            # Many records under one key, so a full page is about 7 KiB.
            now = time.time()
            records = []
            for i in range(40):
                author = det_key(f"amp-{i}")
                records.append(server_record(author, subkey_in_shard(author, 5), now=now))
            key = records[0].key
            target = nodes[0]
            for record in records:
                target.store.put(key, record, now=now)
            to = target.address
            ratios = {}
            # Requests as small as the protocol allows: no padding, no token.
            minimal: dict[str, list[Any]] = {
                "ping": [b"", b"", os.urandom(16), *to, b""],
                "find_node": [b"", os.urandom(20), b""],
                "find_value": [b"", key, b"", b""],
            }
            for name, args in minimal.items():
                size, reply = await raw.call(name, args, to)
                assert len(reply) <= 3 * size, name
                ratios[name] = len(reply) / size
            # A padded request gets its 20 contacts (QUIC's padded Initial, RFC 9000 §14.1).
            size, reply = await raw.call("find_node", [b"", os.urandom(20), bytes(PAD_BYTES)], to)
            assert len(body(reply)[0]) == 7 and len(reply) <= 3 * size
            # find_value from an unproven address: trimmed page, a token, paging still works.
            size, reply = await raw.call("find_value", [b"", key, b"", bytes(PAD_BYTES)], to)
            page = body(reply)
            assert len(reply) <= 3 * size
            assert len(page["token"]) == 8
            assert page["records"] or page.get("retry") is True
            # Echoing the token proves the address: now a full page of about 7 KiB.
            size, reply = await raw.call("find_value", [b"", key, b"", page["token"]], to)
            full = body(reply)
            assert len(reply) > 3 * size and len(reply) > 6000
            assert full["next"] is not None and len(full["records"]) > 5
            got = list(full["records"])
            while full["next"] is not None:
                _, reply = await raw.call("find_value", [b"", key, full["next"], b""], to)
                full = body(reply)
                got.extend(full["records"])
            assert sorted(got) == sorted(r.raw for r in records)
            assert target.metrics.get("amplification.capped") >= 4
            assert target.metrics.get("dropped.amplification") == 0
            print("reply/request ratios of minimal unproven requests:", ratios)
        finally:
            assert raw.transport is not None
            raw.transport.close()
            await stop_all(nodes)

    run(main)


def test_store_needs_a_token_bound_to_the_writers_address() -> None:
    async def main() -> None:
        (node,) = await start_nodes(1, config=FAST, first=71)
        writer = await raw_socket("127.0.91.1")
        other = await raw_socket("127.0.92.1")
        record = server_record(det_key("token-writer"))
        to = node.address
        try:
            # No token presented: refused with the code "token", nothing stored or verified.
            _, reply = await writer.call("store", [b"", record.key, [record.raw]], to)
            assert body(reply) == ["token"]
            assert node.store.count() == 0
            assert node.metrics.get("store.refused.token") == 1
            # A token handed to another address proves nothing for this one.
            _, pong = await other.call("ping", [b"", b"", os.urandom(16), *to, b""], to)
            foreign = body(pong)[3]
            await writer.call("find_node", [b"", os.urandom(20), foreign], to)
            _, reply = await writer.call("store", [b"", record.key, [record.raw]], to)
            assert body(reply) == ["token"]
            # Its own token, echoed once, unlocks STOREs from its address.
            _, pong = await writer.call("ping", [b"", b"", os.urandom(16), *to, b""], to)
            token = body(pong)[3]
            await writer.call("ping", [b"", b"", os.urandom(16), *to, token], to)
            _, reply = await writer.call("store", [b"", record.key, [record.raw]], to)
            assert body(reply) == [True]
            assert node.store.count() == 1
            # Honest writers present their token by themselves: a put just works.
            (peer,) = await start_nodes(1, config=FAST, first=72)
            await peer.bootstrap([to])
            second = server_record(det_key("token-writer-2"))
            result = await peer.put(second)
            assert result.accepted >= 1 and node.store.count() == 2
            await stop_all([peer])
        finally:
            for sock in (writer, other):
                assert sock.transport is not None
                sock.transport.close()
            await stop_all([node])

    run(main)


def test_a_flood_from_one_address_is_limited_while_others_are_served() -> None:
    async def main() -> None:
        config = dataclasses.replace(
            FAST, request_rate=20, request_burst=40, verify_rate=5, verify_burst=10
        )
        nodes = await start_nodes(3, config=config, first=73)
        flood = await raw_socket("127.0.93.1")
        try:
            await join(nodes)
            victim = nodes[0]
            loop = asyncio.get_running_loop()
            before = victim.metrics.get("rpc.find_node.received")
            start = loop.time()
            for _ in range(20):
                # Bursts of 20, so the kernel's receive buffer does not drop most of them.
                for _ in range(20):
                    flood.send("find_node", [b"", os.urandom(20), bytes(PAD_BYTES)], victim.address)
                await asyncio.sleep(0.002)
            limited = served = 0
            for _ in range(300):
                await asyncio.sleep(0.01)
                limited = victim.metrics.get("ratelimit.requests")
                served = victim.metrics.get("rpc.find_node.received") - before
                if limited + served >= 400:
                    break
            elapsed = loop.time() - start
            # The kernel may drop some of the burst; of what arrived, the bucket let
            # through at most its depth plus the rate over the elapsed time.
            assert limited + served >= 300
            assert served <= 40 + 20 * elapsed + 1
            assert limited >= 150 and flood.received <= served
            served = victim.metrics.get("rpc.find_node.received")
            # Other peers are still served: a full round trip from another /24.
            record = server_record(det_key("flood-honest"))
            await nodes[1].put(record)
            assert await nodes[2].get(record.key) == [record]
            assert victim.metrics.get("rpc.find_node.received") > served
            # Signature checks per IP: a proven writer offering many unseen records gets
            # "busy" after the burst, and each refusal cost no Ed25519 check.
            writer = await raw_socket("127.0.94.1")
            to = victim.address
            _, pong = await writer.call("ping", [b"", b"", os.urandom(16), *to, b""], to)
            await writer.call("ping", [b"", b"", os.urandom(16), *to, body(pong)[3]], to)
            raws = [server_record(det_key(f"busy-{i}")).raw for i in range(30)]
            codes = []
            for raw in raws:
                _, reply = await writer.call("store", [b"", os.urandom(20), [raw]], to)
                codes.extend(body(reply))
            assert writer.transport is not None
            writer.transport.close()
            # 10 checks of burst, then about 5 a second: the rest are "busy" (each
            # verified record is refused as wrong_key: the key asked is random).
            assert codes.count("busy") >= 15
            assert victim.metrics.get("ratelimit.verifications") == codes.count("busy")
        finally:
            assert flood.transport is not None
            flood.transport.close()
            await stop_all(nodes)

    run(main)
