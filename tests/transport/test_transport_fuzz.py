"""The QUIC endpoint's invariant on untrusted datagrams: each is routed to a connection,
opens one (a client Initial of at least 1,200 bytes, within the limits), or is dropped
and counted; nothing raises and nothing is sent to a source that proved nothing."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fairdht.transport import QuicEndpoint

QUIC_LOOKING = st.binary(min_size=1, max_size=1400).map(lambda b: bytes([b[0] | 0x40]) + b[1:])
# Long-header version-1 Initials with random ids and a random (undecryptable) body,
# padded to the 1,200 bytes that make a server consider them.


def _initial(dcid: bytes, body: bytes) -> bytes:
    head = b"\xc3\x00\x00\x00\x01\x08" + dcid + b"\x08" + bytes(8) + b"\x00"
    body = body.ljust(1200 - len(head) - 2, b"\x00")
    return head + (0x4000 | len(body)).to_bytes(2, "big") + body


INITIALS = st.builds(_initial, st.binary(min_size=8, max_size=8), st.binary(max_size=1300))


async def _swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(QUIC_LOOKING, INITIALS), min_size=1, max_size=20))
def test_garbage_is_dropped_and_counted_never_raised(datagrams: list[bytes]) -> None:
    async def main() -> tuple[int, int, int]:
        sent: list[bytes] = []
        endpoint = QuicEndpoint(lambda data, addr: sent.append(data), accept=_swallow)
        try:
            for data in datagrams:
                endpoint.datagram_received(data, ("198.51.100.7", 4000))
            counted = endpoint.metrics.snapshot()
            handled = sum(v for k, v in counted.items() if k.startswith("quic.dropped."))
            handled += counted.get("quic.accepted", 0)
            # aioquic's parsers never raised on these (the endpoint would count quic.errors).
            assert counted.get("quic.errors", 0) == 0, counted
            return handled, endpoint.connections, sum(map(len, sent))
        finally:
            await endpoint.close()

    handled, connections, sent_bytes = asyncio.run(main())
    # Each datagram was dropped, or reached or opened a connection (at most one per datagram).
    assert connections <= len(datagrams)
    assert handled >= 1 or connections >= 1
    # Whatever answered a connection attempt stays under 3x what arrived (RFC 9000 §8.1).
    assert sent_bytes <= 3 * sum(map(len, datagrams))


def test_garbage_initials_hold_their_subnets_share_only_until_the_handshake_timeout() -> None:
    async def main() -> tuple[int, int, int]:
        endpoint = QuicEndpoint(lambda data, addr: None, accept=_swallow, handshake_timeout=0.5)
        try:
            for i in range(40):
                endpoint.datagram_received(
                    _initial(bytes([i]) * 8, b"junk"), (f"198.51.100.{i}", 4000)
                )
            held = endpoint.connections
            await asyncio.sleep(1.5)
            return held, endpoint.connections, endpoint.metrics.get("quic.refused.subnet")
        finally:
            await endpoint.close()

    held, after, refused = asyncio.run(main())
    assert (held, refused) == (16, 24)
    assert after == 0
