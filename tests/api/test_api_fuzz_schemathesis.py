"""schemathesis (the OpenAPI fuzzer) against a real node's API: every answer must match
the published document (``/api/openapi.json``), and every request the document calls
valid must be served, every one it calls invalid refused.

Two real nodes on 127.0.1.1 and 127.0.2.1 (UDP) hold real signed records: servers on
the followed network and on ``demo`` (the default network), a checkpoint, karma votes
and a referee offer. Node 1's API is served by aiohttp on 127.0.0.1, port 0, and
schemathesis' CLI runs against it in a child process with every check, a fixed seed
and a bounded number of examples per operation (about 40 s on 2 cores). Rules the
document cannot state are in ``schemathesis.toml`` and ``schemathesis_hooks.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

from apikit import (
    NET,
    announce,
    api_nodes,
    key,
    maintainer_signs,
    put_all,
    run,
    trusting,
)

from fairdht.records.kinds.referee import RefereeOffer
from fairdht.referee.offers import sign_offer
from fairdht.trust import DEMO_NETWORK

HERE = Path(__file__).resolve().parent
EXAMPLES = 10
SEED = 20261206
# Seconds a request may take; an event stream is read for this long, then closed.
REQUEST_TIMEOUT = 2


def test_schemathesis_finds_no_mismatch_between_the_api_and_its_document(
    tmp_path: Path,
) -> None:
    report = tmp_path / "schemathesis.json"

    async def body() -> None:
        async with api_nodes(tmp_path, 2, prepare=trusting) as (one, two):
            now = time.time()
            servers = [
                announce(key(f"fuzz-{i}"), f"127.0.7{i}.1:28785", name=f"Fuzz {i}", network=net)
                for i in range(3)
                for net in (NET, DEMO_NETWORK)
            ]
            assert await put_all(two, servers) == len(servers)
            await one.live.sync_once()
            await maintainer_signs(tmp_path, two, "checkpoint")
            await one.live.sync_once()
            offer = sign_offer(
                key("fuzz-referee"),
                DEMO_NETWORK,
                bytes(32),
                RefereeOffer(game="g1", players=(), endpoint="127.0.79.1:9000"),
                now=now,
            )
            assert await put_all(two, [offer]) == 1
            vote = {"subject": key("fuzz-0").public_key.hex(), "action": "connected_ok"}
            response = await one.http.post("/api/karma/vote", json=vote, headers=one.auth)
            assert response.status == 201, await response.text()
            assert len((await one.json(f"/api/servers?network={NET}"))["servers"]) == 3

            url = str(one.http.make_url("/api/openapi.json"))
            env = {**os.environ, "PYTHONPATH": str(HERE), "NO_COLOR": "1"}
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "schemathesis.cli",
                "--config-file",
                str(HERE / "schemathesis.toml"),
                "run",
                url,
                "--checks",
                "all",
                "--max-examples",
                str(EXAMPLES),
                "--seed",
                str(SEED),
                "--workers",
                "1",
                "--generation-database",
                "none",
                "--request-timeout",
                str(REQUEST_TIMEOUT),
                "--header",
                f"Authorization: Bearer {one.node.api_token}",
                "--report",
                "json",
                "--report-json-path",
                str(report),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                cwd=tmp_path,  # its working files stay out of the checkout
            )
            output, _ = await asyncio.wait_for(process.communicate(), 240)
            text = output.decode(errors="replace")
            assert process.returncode == 0, text[-20_000:]
            assert "22 selected / 22 total" in text, text[-5_000:]

    run(body)
    summary = json.loads(report.read_text())
    assert summary["failures"] == [] and summary["errors"] == []
    assert summary["operations"]["tested"] == summary["operations"]["total"] == 22
    for phase in ("coverage", "fuzzing", "stateful"):
        assert summary["phases"][phase]["status"] == "success", summary["phases"]
    # Every operation got requests of its own (not one case each).
    assert summary["test_cases"]["generated"] >= 17 * EXAMPLES
