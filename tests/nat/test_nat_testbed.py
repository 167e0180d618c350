"""The NAT testbed itself: each router behaves as the NAT type it claims (RFC 4787).

Raw UDP sockets opened inside the namespaces: an inner host sends from one port to two
entry hosts, which report the source they saw (the mapping); then a host it never
contacted sends to that mapping (the filtering).
"""

from __future__ import annotations

import socket
import subprocess

from netlab import Host, NatTestbed, NatType, nat_testbed, netlab

Address = tuple[str, int]


def udp(host: Host, port: int = 0) -> socket.socket:
    """A UDP socket of ``host`` (opened inside its namespace), bound to ``port``."""

    def make() -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("0.0.0.0", port))
        sock.settimeout(1.0)
        return sock

    return host.call(make)


def received(sock: socket.socket) -> tuple[bytes, Address] | None:
    """The next datagram on ``sock`` within its timeout, or None."""
    try:
        data, source = sock.recvfrom(2048)
    except TimeoutError:
        return None
    return data, (source[0], source[1])


def observe(bed: NatTestbed, inner: socket.socket) -> list[Address]:
    """Send from ``inner`` to e1 and e2; the source address each of them saw."""
    seen = []
    for entry in bed.entries[:2]:
        with udp(entry, 5000) as far:
            assert entry.v4 is not None
            inner.sendto(b"hello", (entry.v4, 5000))
            got = received(far)
            assert got is not None, f"{entry.name} got nothing"
            seen.append(got[1])
            # The contacted host's reply comes back through every NAT type.
            far.sendto(b"reply", got[1])
            assert received(inner) == (b"reply", (entry.v4, 5000))
    return seen


def unsolicited_arrives(bed: NatTestbed, inner: socket.socket, mapping: Address) -> bool:
    """Whether a datagram from a host ``inner`` never contacted reaches it."""
    with udp(bed.entries[2]) as stranger:
        stranger.sendto(b"stranger", mapping)
        return received(inner) is not None


def test_full_cone_maps_and_filters_independently_of_the_endpoint(bed: NatTestbed) -> None:
    home = bed.homes["fc"]
    with udp(home.host, 4000) as inner:
        seen = observe(bed, inner)
        assert seen == [(home.public_ip, 4000)] * 2
        assert unsolicited_arrives(bed, inner, seen[0])


def test_port_restricted_keeps_the_port_but_lets_only_replies_in(bed: NatTestbed) -> None:
    home = bed.homes["pr"]
    with udp(home.host, 4000) as inner:
        seen = observe(bed, inner)
        assert seen == [(home.public_ip, 4000)] * 2
        assert not unsolicited_arrives(bed, inner, seen[0])


def test_symmetric_nat_maps_each_destination_to_a_new_port(bed: NatTestbed) -> None:
    home = bed.homes["sym"]
    with udp(home.host, 4000) as inner:
        seen = observe(bed, inner)
        assert {ip for ip, _ in seen} == {home.public_ip}
        assert seen[0][1] != seen[1][1]
        assert not unsolicited_arrives(bed, inner, seen[0])


def test_carrier_grade_nat_shows_the_carrier_address(bed: NatTestbed) -> None:
    home = bed.homes["cg"]
    assert home.nat is NatType.PORT_RESTRICTED
    with udp(home.host, 4000) as inner:
        seen = observe(bed, inner)
        assert {ip for ip, _ in seen} == {home.public_ip} == {"198.18.204.1"}
        assert not unsolicited_arrives(bed, inner, seen[0])


def lab_namespaces(prefix: str) -> list[str]:
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return [line.split()[0] for line in listing.stdout.splitlines() if line.startswith(prefix)]


def test_a_short_mapping_timeout_closes_an_idle_mapping_and_a_failed_test_tears_down(
    nat_ok: None,
) -> None:
    prefix = ""
    try:
        with netlab("k") as lab:
            prefix = lab.prefix
            bed = nat_testbed(lab, mapping_timeout=1)
            home = bed.homes["fc"]
            with udp(home.host, 4000) as inner:
                mapping = observe(bed, inner)[0]
                assert unsolicited_arrives(bed, inner, mapping)
                # Silent for longer than the mapping timeout: the full cone is closed.
                inner.settimeout(2.5)
                assert received(inner) is None
                assert not unsolicited_arrives(bed, inner, mapping)
            raise LookupError("a failing test")
    except LookupError:
        pass
    assert prefix
    assert lab_namespaces(prefix) == []
