"""Records that simulations put and read: server announcements on chosen keys."""

from __future__ import annotations

from fairdht.identity import SigningKey
from fairdht.records import Record, sign_record
from fairdht.records.kinds.server import (
    SERVER_KIND,
    SERVER_SHARDS,
    ServerAnnouncement,
    server_shard,
)

__all__ = ["SIM_NETWORK", "server_record", "subkey_for_shard"]

SIM_NETWORK = "sim"


def subkey_for_shard(author: bytes, shard: int, *, start: int = 0) -> bytes:
    """The first subkey ``b"srv<n>"`` (n >= start) whose slot lands on server-list ``shard``.

    Lets a workload put records of many authors under one DHT key (one shard key).
    """
    if not 0 <= shard < SERVER_SHARDS:
        raise ValueError(f"shard must be in 0..{SERVER_SHARDS - 1}")
    # Each try hits the shard with probability 1/32; 4,096 tries miss with p < 1e-56.
    for n in range(start, start + 4096):
        subkey = b"srv%d" % n
        if server_shard(author, subkey) == shard:
            return subkey
    raise ValueError("no subkey found for the shard")


def server_record(
    key: SigningKey,
    *,
    now: float,
    subkey: bytes,
    port: int = 7000,
    name: str = "sim server",
    network: str = SIM_NETWORK,
) -> Record:
    """A signed server announcement by ``key`` for slot ``subkey``."""
    body = ServerAnnouncement(address=f"198.51.100.7:{port}", name=name, players=1, max_players=8)
    return sign_record(key, SERVER_KIND, network, subkey, body, now=now)
