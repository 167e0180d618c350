"""The virtual-time loop: idle waits jump the clock; timers and timeouts fire in virtual time."""

from __future__ import annotations

import asyncio

import pytest

from fairdht.sim import DEFAULT_START, VirtualClock, VirtualTimeLoop, run_virtual, virtual_clock


def test_sleep_advances_virtual_time_exactly() -> None:
    async def main() -> tuple[float, float, float]:
        clock = virtual_clock()
        t0 = clock()
        await asyncio.sleep(3600)
        t1 = clock()
        # Ten virtual years: the run can only finish (under pytest's timeout) by jumping.
        await asyncio.sleep(10 * 365 * 86400)
        return t0, t1, clock()

    t0, t1, t2 = run_virtual(main())
    assert t0 == DEFAULT_START
    assert t1 - t0 == 3600
    assert t2 - t1 == 10 * 365 * 86400


def test_loop_time_is_the_clock_given_to_nodes() -> None:
    async def main() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(1.5)
        return loop.time(), virtual_clock()()

    assert run_virtual(main(), start=1000.0) == (1001.5, 1001.5)


def test_wait_for_times_out_in_virtual_time() -> None:
    async def main() -> float:
        clock = virtual_clock()
        t0 = clock()
        never = asyncio.Event()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(never.wait(), timeout=5.0)
        return clock() - t0

    assert run_virtual(main()) == 5.0


def test_timers_fire_in_deadline_order_including_zero_delay() -> None:
    async def main() -> list[tuple[str, float]]:
        loop = asyncio.get_running_loop()
        fired: list[tuple[str, float]] = []
        done = asyncio.Event()
        start = loop.time()

        def mark(name: str) -> None:
            fired.append((name, loop.time() - start))
            if len(fired) == 4:
                done.set()

        loop.call_later(2.0, mark, "two")
        loop.call_later(0.0, mark, "zero")
        loop.call_later(0.25, mark, "quarter")
        loop.call_at(start + 7.0, mark, "seven")
        await done.wait()
        return fired

    assert run_virtual(main()) == [("zero", 0.0), ("quarter", 0.25), ("two", 2.0), ("seven", 7.0)]


def test_concurrent_sleepers_wake_at_their_own_virtual_times() -> None:
    async def sleeper(delay: float) -> float:
        await asyncio.sleep(delay)
        return virtual_clock()()

    async def main() -> list[float]:
        return list(await asyncio.gather(*(sleeper(d) for d in (30.0, 0.5, 12.0))))

    assert run_virtual(main(), start=0.0) == [30.0, 0.5, 12.0]


def test_executor_threads_still_wake_the_loop() -> None:
    async def main() -> int:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, sum, [1, 2, 3])

    assert run_virtual(main()) == 6


def test_a_loop_with_nothing_to_wait_for_reports_a_deadlock() -> None:
    async def main() -> None:
        await asyncio.get_running_loop().create_future()

    with pytest.raises(RuntimeError, match="deadlocked"):
        run_virtual(main(), idle_limit=0.05)


def test_virtual_clock_needs_the_virtual_loop() -> None:
    async def main() -> None:
        virtual_clock()

    with pytest.raises(RuntimeError, match="VirtualTimeLoop"):
        asyncio.run(main())


def test_clock_never_goes_back() -> None:
    clock = VirtualClock(5.0)
    clock.advance(2.5)
    assert clock() == clock.now == 7.5
    with pytest.raises(ValueError, match="cannot go back"):
        clock.advance(-1.0)


def test_loop_can_be_driven_directly() -> None:
    loop = VirtualTimeLoop(VirtualClock(100.0))
    try:
        loop.run_until_complete(asyncio.sleep(50))
        assert loop.time() == 150.0
    finally:
        loop.close()
