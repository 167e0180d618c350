"""The subnets of this machine's network interfaces, for the local-networks setting."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Mapping

import psutil

from fairdht.localnet import IPNetwork, LocalNetworks

__all__ = ["detect_local_networks"]


def detect_local_networks(environ: Mapping[str, str] | None = None) -> LocalNetworks:
    """The setting of a full node: its interfaces' subnets, with the LAN exemption on."""
    own: list[IPNetwork] = []
    for addrs in psutil.net_if_addrs().values():
        for addr in addrs:
            if addr.family not in (socket.AF_INET, socket.AF_INET6) or not addr.netmask:
                continue
            with contextlib.suppress(ValueError):
                host = addr.address.split("%", 1)[0]  # drop an IPv6 zone (fe80::1%eth0)
                own.append(ipaddress.ip_network(f"{host}/{addr.netmask}", strict=False))
    public = LocalNetworks.from_environ(environ).public
    return LocalNetworks(public=public, own=tuple(own), exempt=True)
