"""The in-memory network: asyncio's endpoint shape, seeded fates, partitions and kills."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import pytest

from fairdht.sim import MemoryNetwork, run_virtual, virtual_clock
from fairdht.sim.memnet import Address


class Recorder(asyncio.DatagramProtocol):
    """Records every datagram with its virtual arrival time."""

    def __init__(self) -> None:
        self.got: list[tuple[bytes, Address, float]] = []
        self.lost: list[Exception | None] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.DatagramTransport)
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.got.append((data, addr, asyncio.get_running_loop().time()))

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.append(exc)


class Echo(Recorder):
    """Sends every datagram back to its source."""

    def datagram_received(self, data: bytes, addr: Address) -> None:
        super().datagram_received(data, addr)
        assert self.transport is not None
        self.transport.sendto(b"echo:" + data, addr)


async def settle(seconds: float = 60.0) -> None:
    """Let every datagram in flight arrive (virtual time)."""
    await asyncio.sleep(seconds)


def test_endpoint_has_asyncio_shape_and_port_zero_picks_free_ports() -> None:
    async def main() -> None:
        net = MemoryNetwork(seed=1)
        t1, p1 = await net.create_endpoint(Recorder, local_addr=("127.0.0.1", 0))
        t2, p2 = await net.create_endpoint(Recorder, local_addr=("127.0.0.1", 0))
        t3, _ = await net.create_endpoint(Recorder, local_addr=("127.0.2.1", 4000))
        assert isinstance(t1, asyncio.DatagramTransport)
        assert p1.transport is t1 and p2.transport is t2
        a1, a2 = t1.get_extra_info("sockname"), t2.get_extra_info("sockname")
        assert a1[0] == a2[0] == "127.0.0.1"
        assert a1[1] != a2[1] and a1[1] > 0 and a2[1] > 0
        assert t3.get_extra_info("sockname") == ("127.0.2.1", 4000)
        with pytest.raises(OSError, match="in use"):
            await net.create_endpoint(Recorder, local_addr=("127.0.2.1", 4000))
        assert sorted(net.addresses()) == sorted([a1, a2, ("127.0.2.1", 4000)])
        for t in (t1, t2, t3):
            t.close()

    run_virtual(main())


def test_roundtrip_is_delayed_within_bounds_and_never_synchronous() -> None:
    async def main() -> None:
        net = MemoryNetwork(seed=2, delay=(0.02, 0.05))
        tc, client = await net.create_endpoint(Recorder, local_addr=("127.0.0.1", 0))
        ts, server = await net.create_endpoint(Echo, local_addr=("127.0.0.2", 0))
        t0 = virtual_clock()()
        tc.sendto(b"ping", ts.get_extra_info("sockname"))
        assert server.got == []  # delivery is scheduled, not done inside sendto
        await settle()
        [(data, src, t_server)] = server.got
        assert (data, src) == (b"ping", tc.get_extra_info("sockname"))
        assert 0.02 <= t_server - t0 <= 0.05
        [(reply, rsrc, t_client)] = client.got
        assert (reply, rsrc) == (b"echo:ping", ts.get_extra_info("sockname"))
        assert 0.04 <= t_client - t0 <= 0.10
        snap = net.counters.snapshot()
        assert snap["sent"] == snap["delivered"] == 2
        assert snap["sent_bytes"] == len(b"ping") + len(b"echo:ping")
        assert snap["dropped"] == 0
        assert net.endpoint(tc.get_extra_info("sockname")).sent == 1
        assert net.endpoint(tc.get_extra_info("sockname")).received == 1

    run_virtual(main())


async def _blast(seed: int, **kw: Any) -> tuple[list[bytes], dict[str, int]]:
    net = MemoryNetwork(seed=seed, **kw)
    ts, _ = await net.create_endpoint(Recorder, local_addr=("10.0.0.1", 1))
    _, rec = await net.create_endpoint(Recorder, local_addr=("10.0.0.2", 1))
    for i in range(2000):
        ts.sendto(i.to_bytes(2, "big"), ("10.0.0.2", 1))
    await settle()
    return [d for d, _, _ in rec.got], net.counters.snapshot()


def test_loss_is_seeded_counted_and_reproducible() -> None:
    got_a, snap_a = run_virtual(_blast(7, loss=0.1))
    got_b, snap_b = run_virtual(_blast(7, loss=0.1))
    got_c, _ = run_virtual(_blast(8, loss=0.1))
    assert got_a == got_b and snap_a == snap_b  # same seed, same fates, same order
    assert got_a != got_c
    # Binomial(2000, 0.1): mean 200, sd 13.4; 120..280 is about six sigma.
    assert 120 <= snap_a["dropped.loss"] <= 280
    assert snap_a["sent"] == 2000
    assert snap_a["delivered"] + snap_a["dropped"] == 2000
    assert len(got_a) == snap_a["delivered"]
    assert snap_a["dropped_bytes"] == 2 * snap_a["dropped"]


def test_random_delays_reorder_datagrams() -> None:
    got, snap = run_virtual(_blast(3, delay=(0.0, 0.5)))
    assert sorted(got) == [i.to_bytes(2, "big") for i in range(2000)]
    assert got != sorted(got)
    assert snap["dropped"] == 0


def test_duplicates_arrive_twice() -> None:
    got, snap = run_virtual(_blast(4, duplicate=1.0))
    assert snap["duplicated"] == 2000 and snap["delivered"] == 4000
    assert sorted(got) == sorted([i.to_bytes(2, "big") for i in range(2000)] * 2)


def test_partition_cuts_both_directions_until_healed() -> None:
    async def main() -> None:
        net = MemoryNetwork(seed=5)
        ta, a = await net.create_endpoint(Recorder, local_addr=("10.0.1.1", 1))
        tb, b = await net.create_endpoint(Recorder, local_addr=("10.0.2.1", 1))
        tc, c = await net.create_endpoint(Recorder, local_addr=("10.0.3.1", 1))
        aa, ab, ac = (t.get_extra_info("sockname") for t in (ta, tb, tc))
        net.partition({aa}, {ab})
        assert not net.can_reach(aa, ab) and not net.can_reach(ab, aa)
        assert net.can_reach(aa, ac)
        ta.sendto(b"x", ab)
        tb.sendto(b"y", aa)
        ta.sendto(b"z", ac)  # c is on no side: unaffected
        await settle()
        assert a.got == [] and b.got == [] and [d for d, _, _ in c.got] == [b"z"]
        assert net.counters.snapshot()["dropped.partition"] == 2
        net.heal()
        ta.sendto(b"x", ab)
        await settle()
        assert [d for d, _, _ in b.got] == [b"x"]
        with pytest.raises(ValueError, match="two sides"):
            net.partition({aa}, {aa})

    run_virtual(main())


def test_partition_also_drops_datagrams_already_in_flight() -> None:
    async def main() -> None:
        net = MemoryNetwork(seed=5, delay=(1.0, 1.0))
        ta, _ = await net.create_endpoint(Recorder, local_addr=("10.0.1.1", 1))
        _, b = await net.create_endpoint(Recorder, local_addr=("10.0.2.1", 1))
        ta.sendto(b"x", ("10.0.2.1", 1))
        net.partition({("10.0.1.1", 1)}, {("10.0.2.1", 1)})
        await settle()
        assert b.got == []

    run_virtual(main())


def test_killed_node_neither_receives_nor_sends_until_revived() -> None:
    async def main() -> None:
        net = MemoryNetwork(seed=6)
        ta, a = await net.create_endpoint(Recorder, local_addr=("10.0.1.1", 1))
        tb, b = await net.create_endpoint(Echo, local_addr=("10.0.2.1", 1))
        ab = tb.get_extra_info("sockname")
        net.kill(ab)
        assert net.is_killed(ab)
        ta.sendto(b"hello", ab)
        tb.sendto(b"from the dead", ta.get_extra_info("sockname"))
        await settle()
        assert a.got == [] and b.got == []
        assert net.counters.snapshot()["dropped.killed"] == 2
        net.revive(ab)
        ta.sendto(b"hello", ab)
        await settle()
        assert [d for d, _, _ in a.got] == [b"echo:hello"]

    run_virtual(main())


def test_close_unbinds_reports_connection_lost_and_drops_late_datagrams() -> None:
    async def main() -> None:
        net = MemoryNetwork(seed=9, delay=(1.0, 1.0))
        ta, _ = await net.create_endpoint(Recorder, local_addr=("10.0.1.1", 1))
        tb, b = await net.create_endpoint(Recorder, local_addr=("10.0.2.1", 1))
        ta.sendto(b"late", ("10.0.2.1", 1))
        tb.close()
        assert tb.is_closing()
        tb.sendto(b"ignored", ("10.0.1.1", 1))  # like asyncio: a closed transport drops it
        await settle()
        assert b.got == [] and b.lost == [None]
        snap = net.counters.snapshot()
        assert snap["dropped.unbound"] == 1 and snap["sent"] == 1
        # The address is free again.
        tb2, _ = await net.create_endpoint(Recorder, local_addr=("10.0.2.1", 1))
        tb2.abort()
        assert tb2.is_closing()
        ta.close()

    run_virtual(main())


def test_bad_arguments_raise() -> None:
    async def main() -> None:
        net = MemoryNetwork(seed=0)
        t, _ = await net.create_endpoint(Recorder)
        with pytest.raises(ValueError, match="address"):
            t.sendto(b"x", ("127.0.0.1", 70000))
        with pytest.raises(ValueError, match="address"):
            t.sendto(b"x", None)
        with pytest.raises(TypeError, match="bytes-like"):
            t.sendto("text", ("127.0.0.1", 1))  # type: ignore[arg-type]

    run_virtual(main())
    with pytest.raises(ValueError, match="probability"):
        MemoryNetwork(seed=0, loss=1.5)
    with pytest.raises(ValueError, match="delay"):
        MemoryNetwork(seed=0, delay=(0.5, 0.1))


def test_a_raising_receiver_is_counted_and_reported_not_fatal() -> None:
    class Boom(Recorder):
        def datagram_received(self, data: bytes, addr: Address) -> None:
            raise ZeroDivisionError("peer's bytes broke us")

    async def main() -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        reported: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _loop, ctx: reported.append(ctx))
        net = MemoryNetwork(seed=0)
        ta, _ = await net.create_endpoint(Recorder, local_addr=("10.0.1.1", 1))
        await net.create_endpoint(Boom, local_addr=("10.0.2.1", 1))
        ta.sendto(b"1", ("10.0.2.1", 1))
        ta.sendto(b"2", ("10.0.2.1", 1))
        await settle()
        assert net.counters.receiver_errors == 2
        return reported

    reported = run_virtual(main())
    assert [type(c["exception"]) for c in reported] == [ZeroDivisionError] * 2


def test_outbound_filter_can_drop_rewrite_and_multiply() -> None:
    def mangle(data: bytes, dst: Address) -> Iterable[bytes]:
        if data == b"drop":
            return []
        if data == b"twice":
            return [data, data]
        return [data.upper()]

    async def main() -> list[bytes]:
        net = MemoryNetwork(seed=0)
        ta, _ = await net.create_endpoint(Recorder, local_addr=("10.0.1.1", 1))
        _, b = await net.create_endpoint(Recorder, local_addr=("10.0.2.1", 1))
        net.set_filter(("10.0.1.1", 1), mangle)
        for msg in (b"drop", b"twice", b"abc"):
            ta.sendto(msg, ("10.0.2.1", 1))
        await settle()
        net.set_filter(("10.0.1.1", 1), None)
        ta.sendto(b"plain", ("10.0.2.1", 1))
        await settle()
        # Inbound: the receiver's filter sees the source and what would be delivered.
        net.set_filter(("10.0.2.1", 1), None, inbound=lambda d, src: [d + src[0].encode()])
        ta.sendto(b"in:", ("10.0.2.1", 1))
        await settle()
        return sorted(d for d, _, _ in b.got)

    assert run_virtual(main()) == [b"ABC", b"in:10.0.1.1", b"plain", b"twice", b"twice"]


def test_endpoint_factory_binds_on_its_host() -> None:
    async def main() -> Address:
        net = MemoryNetwork(seed=0)
        create = net.endpoint_factory("10.7.3.1")
        t, _ = await create(Recorder, local_addr=("127.0.0.1", 0))
        addr: Address = t.get_extra_info("sockname")
        return addr

    host, port = run_virtual(main())
    assert host == "10.7.3.1" and port > 0
