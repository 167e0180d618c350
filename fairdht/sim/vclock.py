"""Virtual time: an asyncio event loop whose clock jumps to the next timer instead of sleeping.

After trio's ``MockClock`` with ``autojump_threshold=0`` (STYLE.md): when no callback is
ready and no I/O is pending, the loop's selector would sleep until the earliest timer;
here it advances the virtual clock by exactly that timeout and returns at once. With the
in-memory network there is no real I/O, so an hour of protocol time costs only the CPU
time of its callbacks. ``loop.time()`` is virtual Unix time, so the same callable serves
as ``DHTNode(clock=...)`` and as the loop's timer base.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import FileDescriptorLike

__all__ = [
    "DEFAULT_START",
    "VirtualClock",
    "VirtualTimeLoop",
    "run_virtual",
    "virtual_clock",
]

T = TypeVar("T")

# 2023-11-14T22:13:20Z: a plausible Unix time, so records signed in a simulation carry
# realistic issued_at/expires_at values.
DEFAULT_START = 1_700_000_000.0

# asyncio treats a timer as due when its deadline is below time() + clock resolution
# (BaseEventLoop._run_once). The monotonic clock's 1 ns is under one ulp of a Unix time
# near 1.7e9 (about 240 ns), so a timer due exactly "now" would never fire; 1 µs is
# several ulps and far below any timeout the protocol uses.
_VIRTUAL_RESOLUTION = 1e-6

# How long (real seconds) the loop may wait with no timer at all before we call it a
# deadlock: only another thread (an executor job) could still wake it.
DEFAULT_IDLE_LIMIT = 30.0


class VirtualClock:
    """A clock that reads virtual Unix seconds and moves only when told to."""

    __slots__ = ("_now",)

    def __init__(self, start: float = DEFAULT_START) -> None:
        self._now = float(start)

    def __call__(self) -> float:
        """Return the current virtual Unix time in seconds."""
        return self._now

    @property
    def now(self) -> float:
        """The current virtual Unix time in seconds."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` (never backwards)."""
        if seconds < 0:
            raise ValueError(f"a clock cannot go back ({seconds} s)")
        self._now += seconds


class _JumpSelector(selectors.BaseSelector):
    """A real selector (for the loop's self-pipe) whose waits advance a virtual clock."""

    def __init__(self, clock: VirtualClock, idle_limit: float) -> None:
        self._real = selectors.DefaultSelector()
        self._clock = clock
        self._idle_limit = idle_limit

    def register(
        self, fileobj: FileDescriptorLike, events: int, data: Any = None
    ) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: FileDescriptorLike) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(
        self, fileobj: FileDescriptorLike, events: int, data: Any = None
    ) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def get_map(self) -> Mapping[FileDescriptorLike, selectors.SelectorKey]:
        return self._real.get_map()

    def close(self) -> None:
        self._real.close()

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        # Real readiness first (a wakeup from another thread), without waiting.
        events = self._real.select(0)
        if events:
            return events
        if timeout is None:
            # No timer is scheduled: only an executor thread can still make progress.
            events = self._real.select(self._idle_limit)
            if not events:
                raise RuntimeError(
                    "virtual-time loop deadlocked: nothing is scheduled and nothing "
                    f"woke it for {self._idle_limit} real seconds"
                )
            return events
        if timeout > 0:
            self._clock.advance(timeout)
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An asyncio loop on a ``VirtualClock``: time() is virtual, idle waits are jumps."""

    def __init__(
        self, clock: VirtualClock | None = None, *, idle_limit: float = DEFAULT_IDLE_LIMIT
    ):
        self.clock = clock if clock is not None else VirtualClock()
        super().__init__(_JumpSelector(self.clock, idle_limit))
        self._clock_resolution = _VIRTUAL_RESOLUTION

    def time(self) -> float:
        """Return the virtual Unix time."""
        return self.clock()


def run_virtual(
    coro: Coroutine[Any, Any, T],
    *,
    start: float = DEFAULT_START,
    idle_limit: float = DEFAULT_IDLE_LIMIT,
) -> T:
    """Run ``coro`` to completion on a fresh virtual-time loop starting at ``start``."""
    clock = VirtualClock(start)
    with asyncio.Runner(loop_factory=lambda: VirtualTimeLoop(clock, idle_limit=idle_limit)) as r:
        return r.run(coro)


def virtual_clock() -> Callable[[], float]:
    """Return the running virtual loop's clock (pass it as ``DHTNode(clock=...)``)."""
    loop = asyncio.get_running_loop()
    if not isinstance(loop, VirtualTimeLoop):
        raise RuntimeError("virtual_clock() needs a running VirtualTimeLoop (use run_virtual)")
    return loop.clock
