"""Shared test helpers live in tests/kit/ and are importable from every test folder.

A DHT socket still open after the test that opened it fails that test: left to the
garbage collector it would raise its ResourceWarning during some later test instead.
"""

from __future__ import annotations

import sys
import traceback
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fairdht.dht.rpc import HardenedRPCProtocol

sys.path.insert(0, str(Path(__file__).resolve().parent / "kit"))

# Protocols made during the running test, with the stack that made them: made inside
# the coroutine that calls DHTNode.listen, that stack names the test line that leaked.
_MADE: list[tuple[weakref.ref[HardenedRPCProtocol], traceback.StackSummary]] = []
_init = HardenedRPCProtocol.__init__


def _recording_init(self: HardenedRPCProtocol, *args: Any, **kwargs: Any) -> None:
    _init(self, *args, **kwargs)
    # Unformatted and without source lines: the simulator makes thousands of these.
    stack = traceback.StackSummary.extract(
        traceback.walk_stack(sys._getframe(1)), limit=14, lookup_lines=False
    )
    _MADE.append((weakref.ref(self), stack))


# Test-only wrapper: the node code has no hook for "a protocol was made", and needs none.
HardenedRPCProtocol.__init__ = _recording_init  # type: ignore[method-assign]


def _holds_a_socket(proto: HardenedRPCProtocol) -> bool:
    # The drain handle is a second fd: it may stay open after the transport closed.
    # A simulated transport (fairdht.sim) has no socket and is the simulation's to drop.
    extra = getattr(proto.transport, "get_extra_info", None)
    real = extra is not None and extra("socket") is not None
    return real or proto._drain_sock is not None


@pytest.fixture(autouse=True)
def _dht_sockets_closed() -> Iterator[None]:
    """Fail the test that leaves a DHT socket (or its drain handle) open."""
    _MADE.clear()
    yield
    left = []
    for ref, where in _MADE:
        proto = ref()
        if proto is not None and _holds_a_socket(proto):
            made = "".join(reversed(where.format()))
            left.append(f"{type(proto).__name__} on {proto.transport!r}, made at:\n{made}")
    _MADE.clear()
    if left:
        pytest.fail("DHT socket left open by this test:\n" + "\n".join(left), pytrace=False)
