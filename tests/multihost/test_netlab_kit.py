"""The multi-host kit itself: hosts reach each other only through the lab, and every
namespace is gone afterwards, after a failure too, and after a crashed run."""

from __future__ import annotations

import socket
import subprocess

import pytest
from netlab import NetLab, netlab


def _namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return {line.split()[0] for line in out.stdout.splitlines() if line.split()}


def _udp_roundtrip(lab: NetLab, family: int, src_ip: str, dst_ip: str) -> bytes:
    af = socket.AF_INET if family == 4 else socket.AF_INET6
    receiver = lab.hosts["b"].call(lambda: socket.socket(af, socket.SOCK_DGRAM))
    sender = lab.hosts["a"].call(lambda: socket.socket(af, socket.SOCK_DGRAM))
    with receiver, sender:
        receiver.bind((dst_ip, 0))
        receiver.settimeout(5)
        sender.bind((src_ip, 0))
        sender.sendto(b"hello", (dst_ip, receiver.getsockname()[1]))
        data, peer = receiver.recvfrom(64)
        assert peer[0] == src_ip  # no NAT on one segment: the source is the host's own
        return data


def test_two_hosts_talk_over_both_families_and_are_removed(netns_ok: None) -> None:
    with netlab("k") as lab:
        seg = lab.segment("wan")
        lab.host("a", seg, v4="198.18.1.10", v6="2001:db8:1::10")
        lab.host("b", seg, v4="198.18.2.10", v6="2001:db8:2::10")
        made = {lab.switch, lab.hosts["a"].ns, lab.hosts["b"].ns}
        assert made <= _namespaces()
        assert _udp_roundtrip(lab, 4, "198.18.1.10", "198.18.2.10") == b"hello"
        assert _udp_roundtrip(lab, 6, "2001:db8:1::10", "2001:db8:2::10") == b"hello"
        # Nothing of the lab is linked into the machine's own namespace.
        own = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout
        assert "198.18." not in own and "2001:db8:" not in own
    assert not made & _namespaces()


def test_a_failing_test_still_tears_the_lab_down(netns_ok: None) -> None:
    names: set[str] = set()

    def failing_test() -> None:
        with netlab("f") as lab:
            lab.host("a", lab.segment("wan"), v4="198.18.1.10")
            names.update({lab.switch, lab.hosts["a"].ns})
            raise RuntimeError("the test failed")

    with pytest.raises(RuntimeError):
        failing_test()
    assert names and not names & _namespaces()


def test_namespaces_of_a_crashed_run_are_removed_at_start(netns_ok: None) -> None:
    # A pid that cannot be alive (above the kernel's pid_max limit of 2**22).
    stale = "fdl4999999-crashed"
    subprocess.run(["ip", "netns", "add", stale], check=True)
    try:
        with netlab("s"):
            assert stale not in _namespaces()
    finally:
        subprocess.run(["ip", "netns", "del", stale], capture_output=True)
