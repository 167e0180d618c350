"""``fairdht gateway`` as a real process: serves, lists a proven server, stops on SIGTERM."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from gwfakes import start_q3
from gwkit import udp_exchange
from loopnet import cluster

from fairdht.app.servers import read_network
from fairdht.gateway import dpmaster
from fairdht.identity.keyfile import write_key
from fairdht.identity.keys import SigningKey


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fairdht", "gateway", *args],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


def test_bad_input_exits_2_with_one_sentence(tmp_path: Path) -> None:
    out = _run("--bootstrap", "127.0.0.1:9", "--data-dir", str(tmp_path), "--game", "X=Not A Net")
    assert out.returncode == 2 and "network name" in out.stderr
    out = _run("--bootstrap", "127.0.0.1:9", "--key", str(tmp_path / "missing.key"))
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    out = _run("--bootstrap", "127.0.0.1:9", "--refresh", "0")
    assert out.returncode == 2


def test_gateway_process_proves_lists_and_stops_cleanly(tmp_path: Path) -> None:
    key_path = tmp_path / "gw" / "node.key"
    write_key(key_path, SigningKey.generate())
    with cluster(tmp_path, 2) as c:
        host, port = c.nodes[0].address
        proc = subprocess.Popen(
            [sys.executable, "-m", "fairdht", "gateway", "--bootstrap", f"{host}:{port}",
             "--data-dir", str(tmp_path / "gw"), "--dpmaster", "127.0.0.1:0",
             "--cube2", "127.0.0.1:0", "--refresh", "1"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            m = re.search(r"dpmaster udp 127\.0\.0\.1:(\d+), cube2 tcp 127\.0\.0\.1:(\d+)", line)
            assert m, line
            master = ("127.0.0.1", int(m[1]))
            server = c.call(start_q3(hostname="CLI Arena", protocol=68))
            found = False
            for _ in range(40):
                server.heartbeat(master)
                replies = c.call(
                    udp_exchange(master, [dpmaster.encode_getservers(68, None, "empty")])
                )
                if replies and server.address in dpmaster.parse_packet(replies[-1]).servers:  # type: ignore[union-attr]
                    found = True
                    break
            assert found
            # ... and it was published on fairdht by the gateway process.
            address = "{}:{}".format(*server.address)
            reader = tmp_path / "reader"
            reader.mkdir()
            published = False
            for _ in range(40):
                result = c.call(read_network([c.nodes[1].address], "quake3arena", reader,
                                             now=time.time()))  # fmt: skip
                if any(e.body.address == address for e in result.listing.listed):
                    published = True
                    break
                time.sleep(0.25)
            assert published
            server.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        stats = json.loads(err.strip().splitlines()[-1])["stats"]
        assert stats["registry"]["proven"] == 1 and stats["driver"]["published"] >= 1
