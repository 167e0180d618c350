"""Key-bound ids (signed challenge, static puzzle) and eclipse resistance, on loopback UDP."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections import Counter
from typing import Any, ClassVar, cast

import msgpack
import pytest
from dhtkit import QUICK, det_key, run, start_nodes, stop_all
from kademlia.node import Node

from fairdht.dht import DHTConfig, DHTNode
from fairdht.dht.admission import (
    RateLimiter,
    TokenMint,
    challenge_message,
    generate_key,
    passes_puzzle,
    subnet_of,
)
from fairdht.dht.protocol import DHTProtocol
from fairdht.dht.rpc import Address
from fairdht.identity import SigningKey, puzzle_bits


def keys_by_puzzle(bits: int, *, passing: bool, count: int) -> list[SigningKey]:
    """Deterministic keys whose ids pass (or fail) a ``bits``-bit puzzle."""
    out = []
    for i in range(10_000):
        key = det_key(f"puzzle-{bits}-{i}")
        if passes_puzzle(key.node_id, bits) == passing:
            out.append(key)
            if len(out) == count:
                return out
    raise AssertionError("not enough keys")


def test_admission_helpers() -> None:
    key = generate_key(6)
    assert puzzle_bits(key.node_id) >= 6 and passes_puzzle(key.node_id, 6)
    assert passes_puzzle(os.urandom(20), 0)
    assert subnet_of("127.0.200.7") == subnet_of("127.0.200.250") == "127.0.200.0/24"
    assert subnet_of("127.0.201.7") != subnet_of("127.0.200.7")
    assert subnet_of("2001:db8:1:2::1") == subnet_of("2001:db8:1:ffff::9") == "2001:db8:1::/48"
    assert subnet_of("::ffff:10.1.2.3") == "10.1.2.0/24"
    # Tokens: bound to the address, valid for this period and the next, then gone.
    mint = TokenMint(300)
    token = mint.mint("127.0.0.1", 5, now=1000)
    assert mint.check(token, "127.0.0.1", 5, now=1100)
    assert not mint.check(token, "127.0.0.2", 5, now=1100)
    assert not mint.check(token, "127.0.0.1", 6, now=1100)
    assert mint.check(token, "127.0.0.1", 5, now=1250)
    assert not mint.check(token, "127.0.0.1", 5, now=1600)
    assert not mint.check(b"", "127.0.0.1", 5, now=1600)
    # Token buckets: a burst, then the rate; other keys are independent.
    limits = RateLimiter(rate=10, burst=5)
    assert [limits.allow("a", 0.0) for _ in range(6)] == [True] * 5 + [False]
    assert limits.allow("b", 0.0)
    assert limits.allow("a", 0.1) and not limits.allow("a", 0.1)
    # The challenge binds nonce, both ids and the address.
    base = challenge_message(bytes(16), b"v" * 20, b"r" * 20, "127.0.0.1", 9)
    others = [
        challenge_message(bytes(15) + b"\x01", b"v" * 20, b"r" * 20, "127.0.0.1", 9),
        challenge_message(bytes(16), b"w" * 20, b"r" * 20, "127.0.0.1", 9),
        challenge_message(bytes(16), b"v" * 20, b"s" * 20, "127.0.0.1", 9),
        challenge_message(bytes(16), b"v" * 20, b"r" * 20, "127.0.0.2", 9),
        challenge_message(bytes(16), b"v" * 20, b"r" * 20, "127.0.0.1", 10),
    ]
    assert base not in others and len(set(others)) == len(others)


def test_ids_failing_the_puzzle_never_enter_and_are_counted() -> None:
    async def main() -> None:
        config = dataclasses.replace(QUICK, puzzle_bits=4)
        (weak,) = keys_by_puzzle(4, passing=False, count=1)
        (strong,) = keys_by_puzzle(4, passing=True, count=1)
        victim = DHTNode(keys_by_puzzle(4, passing=True, count=2)[1], _store(), config=config)
        await victim.listen("127.0.50.1", 0)
        nodes = [DHTNode(k, _store(), config=config) for k in (weak, strong)]
        for n, node in enumerate(nodes):
            await node.listen(f"127.0.{51 + n}.1", 0)
        try:
            for node in nodes:
                await node.bootstrap([victim.address])
            await victim.settle()
            assert {n.id for n in victim.protocol.router.all_contacts()} == {strong.node_id}
            assert victim.metrics.get("routing.refused.puzzle") >= 1
            # The weak node sees the victim (its own id is its problem, not ours).
            assert nodes[0].peer_count() == 1
        finally:
            await stop_all([victim, *nodes])

    run(main)


def _store() -> Any:
    from fairdht.dht.storage import MemoryRecordStore

    return MemoryRecordStore()


class ChallengeAnswerer(asyncio.DatagramProtocol):
    """A raw peer holding ``key``: answers find_node with nothing, pings as told."""

    def __init__(self, key: SigningKey, *, honest: bool) -> None:
        self.key = key
        self.honest = honest
        self.transport: asyncio.DatagramTransport | None = None
        self.seen: Counter[str] = Counter()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def _sign(self, verifier: bytes, nonce: bytes, ip: str, port: int) -> bytes:
        # A dishonest peer signs a nonce of its own choosing (a replayed answer).
        signed = nonce if self.honest else os.urandom(16)
        return self.key.sign(challenge_message(signed, verifier, self.key.node_id, ip, port))

    def datagram_received(self, data: bytes, addr: Address) -> None:
        if data[:1] != b"\x00":
            return
        name, args = msgpack.unpackb(data[21:])
        self.seen[name] += 1
        if name == "find_node":
            reply: Any = [[], bytes(8)]
            if len(args) == 6:  # challenged in the request: answered in the reply
                verifier, _target, _token, nonce, ip, port = args
                reply += [self.key.public_key.raw, self._sign(verifier, nonce, ip, port)]
        elif name == "ping":
            verifier, _key, nonce, ip, port = args[:5]
            sig = self._sign(verifier, nonce, ip, port)
            reply = [self.key.node_id, self.key.public_key.raw, sig, bytes(8)]
        else:
            return
        assert self.transport is not None
        self.transport.sendto(b"\x01" + data[1:21] + msgpack.packb(reply), addr)


class Introducer(DHTProtocol):
    """Answers every find_node with one contact: the raw peer's (claimed) id and address."""

    contact: ClassVar[list[Any]] = []

    def rpc_find_node(
        self, sender: Address, sender_id: bytes, target: bytes, token: bytes
    ) -> list[Any]:
        contacts, minted = super().rpc_find_node(sender, sender_id, target, token)
        return [[*contacts, self.contact], minted]


class IntroducerNode(DHTNode):
    protocol_class = Introducer


@pytest.mark.parametrize("honest", [False, True])
def test_contacts_from_replies_are_used_but_enter_only_after_a_signed_challenge(
    honest: bool,
) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        raw_key = det_key("raw-peer")
        transport, raw = await loop.create_datagram_endpoint(
            lambda: ChallengeAnswerer(raw_key, honest=honest), local_addr=("127.0.55.1", 0)
        )
        host, port = transport.get_extra_info("sockname")[:2]
        Introducer.contact = [raw_key.node_id, host, port]
        (victim,) = await start_nodes(1, config=QUICK, first=56)
        (intro,) = await start_nodes(1, config=QUICK, first=57, node_class=IntroducerNode)
        try:
            await victim.bootstrap([intro.address])
            await victim.find_nodes(os.urandom(20))
            await victim.settle()
            # The lookup asked the unverified contact (usable for lookups), with a
            # challenge in the find_node itself ...
            assert raw.seen["find_node"] >= 1
            assert victim.metrics.get("ping.why.in_find_node") >= 1
            ids = {n.id for n in victim.protocol.router.all_contacts()}
            # ... and it entered the table only if it signed the verifier's nonce.
            assert (raw_key.node_id in ids) is honest
            assert (victim.metrics.get("rpc.find_node.bad_reply") >= 1) is not honest
        finally:
            transport.close()
            await stop_all([victim, intro])

    run(main)


def test_sixty_ids_from_one_24_cannot_fill_a_victims_table() -> None:
    async def main() -> None:
        config = dataclasses.replace(QUICK, max_verify_in_flight=64)
        (victim,) = await start_nodes(1, config=config, first=60)
        attackers: list[DHTNode] = []
        for x in range(1, 61):
            node = DHTNode(det_key(f"eclipse-{x}"), _store(), config=config)
            await node.listen(f"127.0.200.{x}", 0)
            attackers.append(node)
        honest = await start_nodes(3, config=config, first=61)
        try:
            for start in range(0, 60, 15):
                await asyncio.gather(
                    *(a.protocol.call_ping(victim.address) for a in attackers[start : start + 15])
                )
                await victim.settle()
            router = victim.protocol.router
            attacker_ids = {a.node_id for a in attackers}
            inside = [n for n in router.all_contacts() if n.id in attacker_ids]
            # The whole-table bound (10 per /24) and 2 per bucket hold ...
            assert 0 < len(inside) <= config.subnet_table_limit
            for bucket in router.buckets:
                group = [n for n in bucket.nodes.values() if n.id in attacker_ids]
                assert len(group) <= config.subnet_bucket_limit
                cached = [n for n in bucket.replacement_nodes.values() if n.id in attacker_ids]
                assert len(group) + len(cached) <= config.subnet_bucket_limit
            refused = victim.metrics.get("routing.refused.subnet_bucket") + victim.metrics.get(
                "routing.refused.subnet_table"
            )
            assert refused >= 60 - len(inside) - victim.metrics.get("routing.verify_skipped")
            assert refused >= 40
            # ... and honest nodes from other /24s still get in.
            for node in honest:
                await node.bootstrap([victim.address])
            await victim.settle()
            ids = {n.id for n in router.all_contacts()}
            assert {n.node_id for n in honest} <= ids
        finally:
            await stop_all([victim, *attackers, *honest])

    run(main, timeout=60)


def test_subnet_limits_are_configurable_and_zero_disables_them() -> None:
    async def main() -> None:
        key = det_key("unit-subnet")
        config = DHTConfig(subnet_bucket_limit=0, subnet_table_limit=0)
        proto = DHTProtocol(
            key.node_id,
            key.public_key.raw,
            _store(),
            config=config,
            metrics=DHTNode(key, _store()).metrics,
            clock=lambda: 0.0,
            records=DHTNode(key, _store()).records,
            key=key,
        )
        for x in range(30):
            other = det_key(f"same-24-{x}")
            assert proto.admit(Node(other.node_id, "127.0.200.1", 1000 + x), other.public_key.raw)
        assert len(proto.router) == 30
        await proto.stop()

    asyncio.run(main())


def test_lookups_keep_one_id_per_address_and_disjoint_paths_share_no_address() -> None:
    from fairdht.dht.lookup import Lookup, QueryResult
    from fairdht.dht.metrics import Metrics

    # Twelve hosts, each also "naming" two made-up ids at its own address.
    hosts = [(f"10.0.{i}.1", 4000) for i in range(12)]
    real = {h: os.urandom(20) for h in hosts}
    forged = [Node(os.urandom(20), *h) for h in hosts for _ in range(2)]

    async def main() -> None:
        metrics = Metrics()
        asked: dict[int, list[tuple[str, int]]] = {0: [], 1: [], 2: []}
        claims: dict[tuple[Any, Any], int] = {}
        paths: list[Lookup] = []

        def make_query(path: int) -> Any:
            async def query(node: Node) -> QueryResult:
                asked[path].append((node.ip, node.port))
                await asyncio.sleep(0)
                # Every host answers with every real contact and the forged ones.
                return QueryResult(True, [Node(i, *h) for h, i in real.items()] + forged)

            return query

        for p in range(3):
            lookup = Lookup(
                bytes(20),
                make_query(p),
                k=8,
                alpha=3,
                max_queries=50,
                metrics=metrics,
                claims=claims,
                path=p,
            )
            paths.append(lookup)
        for n, (h, node_id) in enumerate(real.items()):
            paths[n % 3].add([Node(node_id, *h)])
        await asyncio.gather(*(p.run() for p in paths))
        seen = [set(a) for a in asked.values()]
        # Each address was asked by one path only, and only once.
        assert sum(len(a) for a in asked.values()) == len(set().union(*seen))
        assert all(not (seen[a] & seen[b]) for a in range(3) for b in range(a + 1, 3))
        assert metrics.get("lookup.duplicate_address") >= len(forged)

    asyncio.run(main())


def test_secure_get_reads_over_disjoint_paths_on_loopback() -> None:
    from dhtkit import FAST, join, server_record

    async def main() -> None:
        nodes = await start_nodes(8, config=FAST, first=100)
        try:
            await join(nodes)
            record = server_record(det_key("secure-read"))
            assert (await nodes[1].put(record, disjoint=True)).accepted >= 1
            reader = nodes[6]
            assert await reader.secure_get(record.key) == [record]
            assert reader.metrics.get("lookup.disjoint") == 3
            assert reader.metrics.get("lookup.unproven_id") == 0
        finally:
            await stop_all(nodes)

    run(main)
