"""``GET /metrics``: Prometheus text with peers, records, RPCs, drops and latency histograms."""

from __future__ import annotations

import asyncio
import re
import socket
from pathlib import Path

from apikit import NET, announce, api_nodes, key, put_all, run

# Exposition format 0.0.4: comments, or `name{labels} value`.
SAMPLE = re.compile(r'^([a-z_:][a-z0-9_:]*)(?:\{((?:[a-z_]+="(?:[^"\\]|\\.)*",?)*)\})? (\S+)$')


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample; asserts each line is a valid comment or sample and types are declared."""
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    typed: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
            continue
        if line.startswith("# HELP "):
            continue
        match = SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        name, labels, value = match.groups()
        assert re.sub(r"_(bucket|sum|count)$", "", name) in typed or name in typed, name
        pairs = tuple(sorted(re.findall(r'([a-z_]+)="((?:[^"\\]|\\.)*)"', labels or "")))
        key_ = (name, pairs)
        assert key_ not in samples, f"duplicate sample {key_}"
        samples[key_] = float("inf") if value == "+Inf" else float(value)
    return samples


def test_metrics_count_peers_records_rpcs_drops_and_lookups(tmp_path: Path) -> None:
    async def body() -> None:
        async with api_nodes(tmp_path) as (one, two):
            assert await put_all(one, [announce(key("m"), "127.0.95.1:1")]) == 1
            # Garbage datagrams from a stranger are dropped and counted, never crash a task.
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.bind(("127.0.96.1", 0))
                for junk in (b"\x00", b"\xff" * 40, b"not msgpack at all"):
                    sock.sendto(junk, two.node.listen)
            for _ in range(100):
                if two.dht.metrics.total("dropped.") >= 3:
                    break
                await asyncio.sleep(0.02)
            await two.json(f"/api/referees/{'11' * 32}?network={NET}")
            await two.live.sync_once()

            response = await two.http.get("/metrics")
            assert response.status == 200
            assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
            samples = parse(await response.text())
            assert samples[("fairdht_peers", ())] == 1
            assert samples[("fairdht_records", ())] == two.node.store.count() >= 1
            assert samples[("fairdht_record_bytes", ())] > 0
            counters = two.dht.metrics.snapshot()
            dropped = {
                dict(labels)["reason"]: v
                for (n, labels), v in samples.items()
                if n == "fairdht_dropped_datagrams_total"
            }
            assert sum(dropped.values()) >= 3
            assert dropped == {
                k.removeprefix("dropped."): v
                for k, v in counters.items()
                if k.startswith("dropped.")
            }
            rpc = {
                (dict(labels)["rpc"], dict(labels)["outcome"]): v
                for (n, labels), v in samples.items()
                if n == "fairdht_rpc_total"
            }
            assert rpc[("find_value", "ok")] >= 1 and rpc[("find_value", "sent")] >= 1
            assert rpc == {
                tuple(k.removeprefix("rpc.").rsplit(".", 1)): v
                for k, v in counters.items()
                if k.startswith("rpc.")
            }

            # One API lookup (the referee offers) and one replica round were timed.
            assert samples[("fairdht_lookup_duration_seconds_count", ())] >= 1
            inf = ("fairdht_lookup_duration_seconds_bucket", (("le", "+Inf"),))
            assert samples[inf] == samples[("fairdht_lookup_duration_seconds_count", ())]
            buckets = [
                v for (n, _), v in samples.items() if n == "fairdht_lookup_duration_seconds_bucket"
            ]
            assert buckets == sorted(buckets)  # cumulative
            assert samples[("fairdht_serverlist_round_duration_seconds_count", ())] == 1
            assert samples[("fairdht_events_published_total", ())] == two.node.events.published

    run(body)
