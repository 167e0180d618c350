"""A flood from 40 addresses of one /24 (a separate process) while a user reads elsewhere.

Run as a script, this module is the flooder: ``python test_dht_ratelimit_flood.py PORT
KEY_HEX RATE SECONDS`` binds 127.0.50.1-40, proves each address to the victim (token
echo), then asks for full find_value pages (about 7 KiB each, the most work a request
can buy) at RATE datagrams a second, until its stdin closes or SECONDS pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import socket
import sys
import time

import msgpack
from dhtkit import (
    FAST,
    det_key,
    join,
    run,
    server_record,
    start_nodes,
    stop_all,
    subkey_in_shard,
)

from fairdht.dht import DHTConfig
from fairdht.dht.client import connect
from fairdht.dht.protocol import REPLY_TOKEN_BYTES
from fairdht.errors import NetworkError

FLOOD_HOSTS = 40
FLOOD_SUBNET = "127.0.50"


def flood(port: int, key: bytes, rate: float, seconds: float) -> None:
    """The flooder process: bounded in datagrams (rate x seconds) and in time."""
    victim = ("127.0.80.1", port)
    socks: list[tuple[socket.socket, bytes]] = []
    for i in range(1, FLOOD_HOSTS + 1):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((f"{FLOOD_SUBNET}.{i}", 0))
        sock.settimeout(5.0)
        ping = ["ping", [b"", b"", os.urandom(16), *victim, b""]]
        sock.sendto(b"\x00" + os.urandom(20) + msgpack.packb(ping, use_bin_type=True), victim)
        token = msgpack.unpackb(sock.recv(9000)[21:])[3]
        sock.setblocking(False)
        socks.append((sock, token))
    print("ready", flush=True)
    start = time.monotonic()
    sent = 0
    limit = int(rate * seconds)
    while sent < limit and time.monotonic() - start < seconds:
        for sock, token in socks:
            request = ["find_value", [b"", key, b"", token]]
            data = b"\x00" + os.urandom(20) + msgpack.packb(request, use_bin_type=True)
            with contextlib.suppress(BlockingIOError):
                sock.sendto(data, victim)
            sent += 1
        ahead = start + sent / rate - time.monotonic()
        # Sleeping on stdin: the test closes it when its reads are done.
        if select.select([sys.stdin], [], [], max(0.0, ahead))[0]:
            break
    print("sent", sent, flush=True)


# 40 hosts at 150 datagrams/s each: each far below the per-host limit (1,000/s, or 125
# pages/s at 8 tokens a page), yet serving them all (6,000 pages/s) is more than a node
# can; dropping them before decoding is not (about 0.1 s of a core a second).
FLOOD_RATE = 6000.0
FLOOD_SECONDS = 30.0


def test_a_flood_from_one_subnet_leaves_users_in_other_subnets_served() -> None:
    async def main() -> None:
        nodes = await start_nodes(4, config=FAST, first=80)
        proc: asyncio.subprocess.Process | None = None
        try:
            await join(nodes)
            victim = nodes[0]
            record = server_record(det_key("flood-reader"))
            await nodes[1].put(record)
            # Forty records under one key make each flooded find_value a full page.
            now = time.time()
            for i in range(40):
                author = det_key(f"flood-page-{i}")
                page_record = server_record(author, subkey_in_shard(author, 5), now=now)
                victim.store.put(page_record.key, page_record, now=now)
            assert victim.store.count() >= 40
            args = [str(victim.address[1]), page_record.key.hex(), str(FLOOD_RATE)]
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                __file__,
                *args,
                str(FLOOD_SECONDS),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            assert proc.stdout is not None and proc.stdin is not None
            assert await asyncio.wait_for(proc.stdout.readline(), 20) == b"ready\n"
            # The flood is on once the /24's bucket ran dry.
            for _ in range(500):
                if victim.metrics.get("ratelimit.requests.subnet") >= 100:
                    break
                await asyncio.sleep(0.02)
            served_before = victim.metrics.get("rpc.find_value.received")
            loop = asyncio.get_running_loop()
            started = loop.time()
            found = 0
            errors: list[str] = []
            for _ in range(10):
                # What `fairdht servers --bootstrap VICTIM` does: a fresh light client.
                try:
                    async with connect([victim.address], config=FAST, bind="127.0.60.1") as c:
                        found += await c.get(record.key) == [record]
                except NetworkError as exc:
                    errors.append(str(exc))
                await asyncio.sleep(0.1)  # spread the reads over a second of flood at least
            reading = loop.time() - started
            proc.stdin.close()
            sent = int((await asyncio.wait_for(proc.stdout.readline(), 20)).split()[1])
            await proc.wait()
            proc = None
            await asyncio.sleep(0.2)  # what is still queued in the node's socket
            elapsed = loop.time() - started
            limited = victim.metrics.get("ratelimit.requests.subnet")
            served = victim.metrics.get("rpc.find_value.received") - served_before
            print(
                f"gets {found}/10 in {reading:.1f}s; flood sent {sent}, served {served}, "
                f"refused per subnet {limited}; errors {errors}"
            )
            # The user outcome: reads through the flooded node go on.
            assert found >= 9, errors
            # The flood happened, and the /24 together got about one host's share: its
            # subnet bucket's rate and burst, a 7 KiB page costing 1 + 7 tokens.
            assert limited >= 1000
            cfg = DHTConfig()
            per_page = 1 + 7000 // REPLY_TOKEN_BYTES
            tokens = cfg.subnet_request_burst + cfg.subnet_request_rate * elapsed
            assert served <= tokens / per_page + 100  # + the light clients' own requests
        finally:
            if proc is not None:
                proc.kill()
                await proc.wait()
            await stop_all(nodes)

    run(main, timeout=120.0)


if __name__ == "__main__":
    flood(int(sys.argv[1]), bytes.fromhex(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]))
