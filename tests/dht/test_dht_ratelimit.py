"""Limits per host and per /24 or /48, the amplification budget, and their bounded memory."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import msgpack
import pytest

from fairdht.dht import DHTConfig, DHTNode
from fairdht.dht.amplification import FACTOR, AmplificationBudget
from fairdht.dht.ratelimit import (
    EVICTION_SCAN,
    HOST,
    SUBNET,
    Limit,
    RateLimiter,
    SourceLimiter,
    source_keys,
)
from fairdht.dht.storage import MemoryRecordStore
from fairdht.sim import MemoryNetwork, run_virtual, virtual_clock
from fairdht.sim.identities import sim_key
from fairdht.sim.memnet import Address

# -- source keys ------------------------------------------------------------------------


def test_source_keys_group_ipv4_by_24_and_ipv6_hosts_by_64_and_sites_by_48() -> None:
    assert source_keys("198.51.100.7") == ("198.51.100.7", "198.51.100")
    assert source_keys("::ffff:198.51.100.7") == ("198.51.100.7", "198.51.100")
    host, subnet = source_keys("2001:db8:1:2:3:4:5:6")
    assert (host, subnet) == ("2001:db8:1:2::/64", "2001:db8:1::/48")
    # Every address of a /64 is one host; every /64 of a /48 is one subnet.
    assert source_keys("2001:db8:1:2::ffff")[0] == host
    assert source_keys("2001:db8:1:ff::1") == ("2001:db8:1:ff::/64", subnet)


# -- token buckets ----------------------------------------------------------------------


def test_forty_hosts_of_one_24_share_one_bucket_and_other_subnets_keep_theirs() -> None:
    limits = SourceLimiter(Limit(10, 10), Limit(20, 40), size=64)
    served = {HOST: 0, SUBNET: 0, None: 0}
    for _ in range(5):
        for i in range(1, 41):
            served[limits.refusal(f"203.0.113.{i}", now=0.0)] += 1
    # 40 hosts asking 5 times each (far below their own 10) get 40 together: the /24's.
    assert served == {None: 40, SUBNET: 160, HOST: 0}
    # Another /24 is untouched, and the /24 refills at its rate.
    assert limits.allow("198.51.100.1", now=0.0)
    assert sum(limits.allow(f"203.0.113.{i}", now=1.0) for i in range(1, 41)) == 20


def test_a_refused_request_takes_from_neither_bucket() -> None:
    limits = SourceLimiter(Limit(1, 3), Limit(1, 5), size=64)
    assert [limits.refusal("192.0.2.1", now=0.0) for _ in range(4)] == [None, None, None, HOST]
    # The host's refusals left the subnet's two remaining tokens for its neighbour...
    assert [limits.refusal("192.0.2.2", now=0.0) for _ in range(3)] == [None, None, SUBNET]
    # ...and the subnet's refusals took nothing from that host.
    assert limits.hosts.available("192.0.2.2", now=0.0) == 1


def test_replies_charge_their_size_into_debt() -> None:
    limits = SourceLimiter(Limit(10, 10), Limit(10, 10), size=8)
    assert limits.allow("192.0.2.1", now=0.0)
    limits.charge("192.0.2.1", now=0.0, cost=25)  # a big reply: debt down to -burst
    assert not limits.allow("192.0.2.1", now=1.0)  # 10 back after a second: still at 0
    assert limits.allow("192.0.2.1", now=2.5)


def test_a_spray_of_10000_keys_stays_within_the_table_and_cannot_refill_a_flooder() -> None:
    table = RateLimiter(rate=1, burst=50, size=1024)
    flooder = "203.0.113"
    while table.allow(flooder, now=0.0):
        pass
    for i in range(10_000):
        table.allow(f"spray-{i}", now=0.001 * i)
        assert len(table) <= 1024
    # The drained bucket was never the fullest of the oldest keys: it is still drained
    # (refilled only by its rate over the spray's ten seconds, not reset to a new burst).
    assert table.available(flooder, now=10.0) < 50
    assert table.early_evictions == 0


def test_a_full_table_forgets_the_fullest_of_its_oldest_keys() -> None:
    table = RateLimiter(rate=1, burst=10, size=EVICTION_SCAN)
    for i in range(EVICTION_SCAN):
        for _ in range(i):
            table.allow(f"k{i}", now=0.0)  # k0 full, k7 down to 3 tokens
    table.allow("new", now=0.0)
    assert len(table) == EVICTION_SCAN
    # k0 went (forgetting a full bucket loses nothing); the drained ones are still drained.
    assert [table.available(f"k{i}", now=0.0) for i in range(1, EVICTION_SCAN)] == [
        10 - i for i in range(1, EVICTION_SCAN)
    ]
    assert table.early_evictions == 0


def test_limits_come_from_the_config() -> None:
    with pytest.raises(ValueError):
        DHTConfig(subnet_request_rate=-1)
    with pytest.raises(ValueError):
        DHTConfig(limiter_size=0)


# -- the amplification budget ------------------------------------------------------------


def test_budget_is_three_times_the_last_datagram_until_the_address_is_proven() -> None:
    budget = AmplificationBudget(proven_for=300.0, credit_for=10.0)
    addr = ("192.0.2.1", 4000)
    assert budget.remaining(addr, now=0.0) == 0
    assert not budget.allow(addr, 1, now=0.0)  # nothing received: nothing may go there
    budget.received(addr, 100, now=0.0)
    assert budget.remaining(addr, now=0.0) == FACTOR * 100
    assert budget.allow(addr, 200, now=0.0) and not budget.allow(addr, 101, now=0.0)
    assert budget.allow(addr, 100, now=0.0) and budget.remaining(addr, now=0.0) == 0
    # The next datagram replaces what was left: each buys 3x itself, no savings.
    budget.received(addr, 50, now=1.0)
    budget.received(addr, 50, now=1.0)
    assert budget.remaining(addr, now=1.0) == 150
    assert budget.remaining(addr, now=12.0) == 0  # credit is short-lived
    budget.prove(addr, now=12.0)
    assert budget.remaining(addr, now=12.0) is None and budget.allow(addr, 10**6, now=12.0)
    assert not budget.proven(addr, now=313.0)
    budget.prove(addr, now=313.0)
    budget.forget_proof(addr)
    assert not budget.allow(addr, 1, now=313.0)


def test_budget_memory_is_bounded_under_a_spray_of_forged_sources() -> None:
    budget = AmplificationBudget(proven_for=300.0, size=1024, proven_size=512)
    for i in range(10_000):
        budget.received((f"10.{i >> 8 & 255}.{i & 255}.1", 1000 + i), 60, now=0.0)
    for i in range(2_000):
        budget.prove((f"192.0.{i >> 8}.{i & 255}", 4000), now=0.0)
    assert len(budget) <= 1024 + 512


# -- on the wire: a spray of 10,000 source addresses at a node ------------------------


class Sink(asyncio.DatagramProtocol):
    """A sprayed source: counts what the node sends back to it."""

    def __init__(self) -> None:
        self.received = 0

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.received += 1


def find_node(sender_id: bytes = b"") -> bytes:
    body = msgpack.packb(["find_node", [sender_id, os.urandom(20), bytes(256)]], use_bin_type=True)
    return b"\x00" + os.urandom(20) + body


def test_a_node_under_a_spray_of_10000_sources_keeps_bounded_tables_and_limits() -> None:
    async def main() -> None:
        net = MemoryNetwork(seed=12, delay=(0.001, 0.001))
        config = DHTConfig(limiter_size=1024)
        node = DHTNode(sim_key(1), MemoryRecordStore(), config=config, clock=virtual_clock())
        to = await node.start(net.create_endpoint, ("10.0.1.1", 4000))
        proto = node.protocol
        sources: list[tuple[Any, Sink]] = []

        async def source(host: str) -> tuple[Any, Sink]:
            transport, sink = await net.create_endpoint(Sink, (host, 0))
            sources.append((transport, sink))
            return transport, sink

        # A flooder drains its /24's bucket (8,000 deep) from 40 hosts.
        flood = [await source(f"10.250.0.{i}") for i in range(1, 41)]
        for _ in range(250):
            for transport, _sink in flood:
                transport.sendto(find_node(), to)
        await asyncio.sleep(0.01)
        assert 40 * 250 - 8000 - 20 <= node.metrics.get("ratelimit.requests.subnet") <= 2000
        # 10,000 sources, each of its own /24, each claiming an id (so each would like a
        # challenge ping): the spray of forged addresses an attacker gets for free.
        for i in range(10_000):
            transport, _sink = await source(f"10.{100 + (i >> 8)}.{i & 255}.7")
            transport.sendto(find_node(sim_key(5000 + i % 50).node_id), to)
            if i % 500 == 499:
                await asyncio.sleep(0.001)
        await asyncio.sleep(0.01)
        assert node.metrics.get("rpc.find_node.received") >= 8000 + 10_000
        # Memory: every table keyed by a source stays within its cap.
        limits = proto.request_limits
        assert len(limits.hosts) <= 1024 and len(limits.subnets) <= 1024
        assert len(proto.verify_limits) <= 2 * 1024
        assert len(proto.budget) <= proto.budget.size + proto.budget.proven_size
        assert len(proto._verifying) <= config.max_verify_in_flight
        # The spray did not hand the flooder a fresh bucket (8,000 deep): it has what its
        # rate (1,000/s) refilled over the spray's few virtual hundredths of a second.
        assert proto.request_limits.subnets.early_evictions == 0
        before = node.metrics.get("ratelimit.requests.subnet")
        for _ in range(5):
            for transport, _sink in flood:
                transport.sendto(find_node(), to)
        await asyncio.sleep(0.01)
        assert node.metrics.get("ratelimit.requests.subnet") - before >= 100
        # An honest newcomer in another /24 is served.
        transport, sink = await source("10.99.0.1")
        transport.sendto(find_node(), to)
        await asyncio.sleep(0.01)
        assert sink.received == 1
        for transport, _sink in sources:
            transport.close()
        await node.stop()

    run_virtual(main())
