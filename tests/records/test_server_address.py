"""A server announcement names one host a client can connect to, never a group or nothing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fairdht.errors import BadBody
from fairdht.records.kinds.server import ServerAnnouncement

NOT_A_HOST = [
    "0.0.0.0:1",
    "0.1.2.3:9",
    "224.0.0.1:5",
    "255.255.255.255:3",
    "240.0.0.1:3",
    "[::]:4",
    "[ff02::1]:4",
]


@pytest.mark.parametrize("address", NOT_A_HOST)
def test_non_unicast_server_addresses_are_refused(address: str) -> None:
    with pytest.raises(BadBody, match="not a unicast address"):
        ServerAnnouncement(address=address, name="x")
    with pytest.raises(BadBody, match="not a unicast address"):
        ServerAnnouncement.from_wire(
            {
                "address": address,
                "name": "x",
                "mode": "",
                "map": "",
                "players": 0,
                "max_players": 0,
                "game_version": "",
                "tags": [],
            }
        )


@pytest.mark.parametrize("address", ["198.51.100.7:28785", "[2001:db8::7]:28785", "10.0.0.2:1"])
def test_unicast_server_addresses_are_kept(address: str) -> None:
    assert ServerAnnouncement(address=address, name="x").address == address


def test_publish_refuses_a_wildcard_address_in_one_sentence() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "fairdht",
            "publish",
            "--key",
            "/nonexistent.key",
            "--bootstrap",
            "127.0.0.1:9",
            "--network",
            "demo",
            "--address",
            "0.0.0.0:28785",
            "--name",
            "x",
            "--once",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "0.0.0.0 is not a unicast address" in done.stderr
