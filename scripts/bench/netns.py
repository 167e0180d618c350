"""Linux network namespaces for traffic counts: each system's workers share a private one.

A fresh namespace holds only a loopback interface, so its packet and byte counters
(``/proc/self/net/dev``, which follows the reader's namespace, unlike ``/sys``) count
exactly the datagrams that system's nodes sent each other: a socket-level count that
needs no hooks in the system under test (OpenDHT's binding has no traffic counters).
Bytes there are IP packet bytes: UDP payload plus 28 bytes of IPv4 and UDP headers.
Needs CAP_SYS_ADMIN (root); callers fall back to no namespace when it is refused.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import struct

__all__ = ["IP_UDP_OVERHEAD", "enter_namespace", "loopback_counters", "new_namespace"]

# clone(2) flag of the network namespace; ioctl numbers from <linux/sockios.h>.
_CLONE_NEWNET = 0x40000000
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
IP_UDP_OVERHEAD = 28


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _loopback_up() -> None:
    # A new namespace's lo is down; bring it up so 127.0.0.0/8 is reachable.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(s, _SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s, _SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | _IFF_UP))


def new_namespace() -> None:
    """Move this process (call before any thread starts) into a new network namespace."""
    if _libc().unshare(_CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare(CLONE_NEWNET) failed: {os.strerror(err)}")
    _loopback_up()


def enter_namespace(path: str) -> None:
    """Join the network namespace at ``path`` (e.g. /proc/PID/ns/net) before any thread starts."""
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc().setns(fd, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}) failed: {os.strerror(err)}")
    finally:
        os.close(fd)


def loopback_counters() -> dict[str, int]:
    """Packets and bytes sent on this namespace's loopback interface since it was made."""
    with open("/proc/self/net/dev", encoding="ascii") as f:
        for line in f:
            name, sep, rest = line.partition(":")
            if sep and name.strip() == "lo":
                fields = rest.split()
                # Receive: bytes packets errs drop fifo frame compressed multicast; then transmit.
                return {"lo_tx_bytes": int(fields[8]), "lo_tx_packets": int(fields[9])}
    return {"lo_tx_bytes": 0, "lo_tx_packets": 0}
