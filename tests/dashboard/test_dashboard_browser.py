"""The dashboard in real headless Chromium (Debian's package, driven by Playwright).

Two real nodes on loopback; node two serves the page. The server browser shows the
published servers, an update and a new server arrive live without a reload, a flood
server is quarantined live by a rollback, and the history view marks the checkpoint
and the rollback and opens a commit's diff with the keys that made it. Screenshots go
to ``test-artifacts/dashboard/``.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from apikit import (
    MAINTAINER,
    NET,
    ApiNode,
    announce,
    api_nodes,
    key,
    maintainer_signs,
    put_all,
    trusting,
)
from playwright.async_api import Page, async_playwright, expect

from fairdht.node.prober import ProbeAnswerer
from fairdht.records.kinds.referee import RefereeOffer
from fairdht.referee.offers import sign_offer

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"
WAIT_MS = 20_000

SERVERS = [
    # (key label, address, name, mode, map, players, tags)
    ("srv-1", "127.0.31.1:28785", "Frag Central", "ctf", "forge", 14, ["eu", "vanilla"]),
    ("srv-2", "127.0.32.1:28785", "Insta Arena", "instagib", "dust2", 9, ["eu"]),
    ("srv-3", "127.0.33.1:28785", "Casual Coop", "coop", "lighthouse", 3, ["newbies"]),
    ("srv-4", "127.0.34.1:28785", "Late Night TDM", "tdm", "reissen", 6, ["us"]),
    ("srv-5", "127.0.35.1:28785", "Clan Wars", "ctf", "hallo", 0, ["clan", "eu"]),
]


def record(label: str, **changes: Any) -> Any:
    """The announcement of SERVERS[label] (with ``changes``), signed now."""
    _, address, name, mode, map_name, players, tags = next(s for s in SERVERS if s[0] == label)
    fields = {"name": name, "players": players, "mode": mode, "map_name": map_name, "tags": tags}
    fields.update(game_version="2.4", **changes)
    return announce(key(label), address, **fields)


async def shot(page: Page, name: str) -> Path:
    """Save a full-page screenshot under test-artifacts/dashboard/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    return path


async def vote(node: ApiNode, label: str, action: str) -> None:
    response = await node.http.post(
        "/api/karma/vote",
        json={"subject": key(label).public_key.hex(), "action": action, "network": NET},
        headers=node.auth,
    )
    assert response.status == 201, await response.text()


async def history_graph(page: Page, checkpoint_root: str) -> None:
    """The graph: spine, revert, flood; two picked points show their diff and its keys."""
    graph = page.locator("#history-graph")
    await expect(graph.locator("g.gnode.spine")).to_have_count(2, timeout=WAIT_MS)
    await expect(graph.locator("g.gnode.local")).to_have_count(3)
    await expect(graph.locator("path.edge.revert")).to_have_count(1)
    await expect(graph.locator("line.edge.spine")).to_have_count(1)
    flood = graph.locator("g.gnode.flood")
    await expect(flood).to_have_count(1)
    await expect(flood).to_have_attribute("data-kind", "rollback")
    # Checkpoint v1 against the commit where the flood arrived: one server added, by
    # the flooder's key.
    await graph.locator("g.gnode[data-kind=checkpoint]").click()
    await graph.locator("g.gnode.local").last.click()
    diff = page.locator("#history-diff")
    await expect(diff).to_contain_text("checkpoint v1 → #", timeout=WAIT_MS)
    await expect(diff.locator("tr.op-added")).to_have_count(1)
    await expect(diff).to_contain_text("FREE VBUCKS")
    await expect(diff).to_contain_text(key("flooder").public_key.hex()[:12])
    await expect(diff).to_contain_text("Keys that caused these changes (1)")
    await expect(graph.locator("g.gnode.picked")).to_have_count(2)
    # The flood commit against the rollback: the flood quarantined, and who signed it.
    await graph.locator("g.gnode[data-kind=rollback]").click()
    await expect(diff).to_contain_text("→ rollback v2", timeout=WAIT_MS)
    await expect(diff.locator("tr.op-quarantined")).to_have_count(1)
    await expect(diff).to_contain_text("rollback v2 signed by")
    # A maintainer prepares a rollback to the picked checkpoint: the exact command.
    await graph.locator("g.gnode[data-kind=checkpoint]").click()
    await page.click("#prepare-rollback")
    command = page.locator("#prepare-command")
    await expect(command).to_contain_text(f"fairdht rollback --to {checkpoint_root}")
    await page.click("#prepare-checkpoint")
    await expect(command).to_have_text(
        f"fairdht checkpoint sign --key MAINTAINER.key --network {NET} --bootstrap HOST:PORT"
    )
    await graph.locator("g.gnode[data-kind=checkpoint]").click()
    await graph.locator("g.gnode.local").last.click()
    await expect(diff.locator("tr.op-added")).to_have_count(1, timeout=WAIT_MS)
    await shot(page, "9-history-graph")
    # `make screenshot` sets FAIRDHT_SCREENSHOT_DIR=docs/img; make test never does.
    docs_dir = os.environ.get("FAIRDHT_SCREENSHOT_DIR")
    if docs_dir:  # Playwright creates the directory
        await page.screenshot(path=f"{docs_dir}/history-graph.png", full_page=True)


def rows(page: Page) -> Any:
    return page.locator("#servers tbody tr")


async def names(page: Page) -> list[str]:
    return await page.locator("#servers tbody tr .name").all_inner_texts()


def test_dashboard_live_server_browser_and_history(tmp_path: Path) -> None:
    assert os.path.exists(CHROMIUM), "run scripts/ensure_chromium.sh (make test does)"

    async def body() -> None:
        async with api_nodes(tmp_path, prepare=trusting) as (one, two), async_playwright() as pw:
            assert await put_all(one, [record(s[0]) for s in SERVERS]) == len(SERVERS)
            await two.live.sync_once()
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page(viewport={"width": 1280, "height": 720})
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                await page.goto(str(two.http.make_url(f"/?network={NET}")))
                await expect(rows(page)).to_have_count(len(SERVERS), timeout=WAIT_MS)
                assert set(await names(page)) == {s[2] for s in SERVERS}
                # Sorted by players, most first; the live badge says the stream is open.
                assert await names(page) == [
                    "Frag Central", "Insta Arena", "Late Night TDM", "Casual Coop", "Clan Wars",
                ]  # fmt: skip
                await expect(page.locator("#live")).to_have_text("live", timeout=WAIT_MS)
                await shot(page, "1-servers")

                # Live: an update and a new server, pushed by the replica, no reload.
                await page.evaluate("window.sameDocument = true")
                assert await put_all(one, [record("srv-3", players=12)]) == 1
                newcomer = announce(key("srv-6"), "127.0.36.1:28785", name="Newcomer", players=2)
                assert await put_all(one, [newcomer]) == 1
                await two.live.sync_once()
                await expect(rows(page)).to_have_count(6, timeout=WAIT_MS)
                coop = page.locator("#servers tbody tr", has_text="Casual Coop")
                await expect(coop.locator(".players")).to_have_text("12/16", timeout=WAIT_MS)
                assert await page.evaluate("window.sameDocument") is True
                await shot(page, "2-live-update")

                # Reachability marks: nobody answered probes yet; then the newcomer's
                # key answers one at its address and its mark turns live (● proven).
                await expect(page.locator("#servers tbody td.up.unknown")).to_have_count(6)
                answerer = ProbeAnswerer(key("srv-6"), "127.0.36.1:28785")
                await answerer.start()
                try:
                    await two.live.probe_round()
                finally:
                    await answerer.close()
                newcomer_row = page.locator("#servers tbody tr", has_text="Newcomer")
                await expect(newcomer_row.locator("td.up.yes")).to_have_count(1, timeout=WAIT_MS)
                await expect(page.locator("#servers tbody td.up.no")).to_have_count(
                    5, timeout=WAIT_MS
                )

                # Sorting and filtering happen in the page.
                await page.click("#servers th[data-sort=name]")
                assert await names(page) == sorted(await names(page), key=str.casefold)
                await page.fill("#filter", "dust2")
                await expect(rows(page)).to_have_count(1)
                assert await names(page) == ["Insta Arena"]
                await page.fill("#filter", "")

                # Checkpoint, then a flood server arrives live, then a rollback takes it out.
                checkpoint = await maintainer_signs(tmp_path, one, "checkpoint")
                await two.live.sync_once()
                flood = announce(key("flooder"), "127.0.66.1:1", name="FREE VBUCKS", players=16)
                assert await put_all(one, [flood]) == 1
                await two.live.sync_once()
                await expect(rows(page)).to_have_count(7, timeout=WAIT_MS)
                await maintainer_signs(
                    tmp_path, one, "rollback", to_root=checkpoint.root.hex(), reason="flood"
                )
                await two.live.sync_once()
                await expect(rows(page)).to_have_count(6, timeout=WAIT_MS)
                assert "FREE VBUCKS" not in await names(page)
                assert await page.evaluate("window.sameDocument") is True

                # Karma colors: this node's own votes count in its own view.
                await vote(two, "srv-1", "connected_ok")
                await vote(two, "srv-2", "session_completed")
                await vote(two, "srv-4", "cheating")
                await page.reload()
                await expect(rows(page)).to_have_count(6, timeout=WAIT_MS)
                await expect(page.locator("#servers tbody tr.k-green")).to_have_count(
                    2, timeout=WAIT_MS
                )
                await expect(page.locator("#servers tbody tr.k-red")).to_have_count(
                    1, timeout=WAIT_MS
                )
                await expect(page.locator("#servers tbody tr.verified")).to_have_count(6)
                await expect(page.locator("#server-summary")).to_contain_text(
                    "closed by a rollback"
                )
                await shot(page, "3-servers-karma")
                # The README's picture is this page, with what the assertions above checked:
                # karma colors, verified marks, the Up column (make screenshot only).
                docs_dir = os.environ.get("FAIRDHT_SCREENSHOT_DIR")
                if docs_dir:
                    await page.screenshot(path=f"{docs_dir}/dashboard.png")

                # History: the checkpoint and the rollback are marked; a click shows the diff.
                await page.click("nav a[data-page=history]")
                await expect(page.locator("#timeline li.commit")).to_have_count(5, timeout=WAIT_MS)
                await expect(page.locator("#timeline li[data-kind=checkpoint]")).to_have_count(1)
                rollback = page.locator("#timeline li[data-kind=rollback]")
                await expect(rollback).to_have_count(1)
                await expect(rollback).to_contain_text("rollback v2")
                await expect(page.locator("#policy")).to_contain_text("closed by a rollback")
                await rollback.click()
                detail = page.locator("#commit")
                await expect(detail).to_contain_text("Signed by (1)", timeout=WAIT_MS)
                await expect(detail).to_contain_text(MAINTAINER.public_key.hex())
                await expect(detail).to_contain_text("FREE VBUCKS")
                await expect(detail.locator("tr.op-quarantined")).to_have_count(1)
                await shot(page, "4-history-rollback")
                await page.locator("#timeline li[data-kind=checkpoint]").click()
                await expect(detail).to_contain_text("checkpoint commit")
                await shot(page, "5-history-checkpoint")
                await history_graph(page, checkpoint.root.hex())

                # Karma page with the explanation, network page with traffic.
                await page.goto(
                    str(two.http.make_url(f"/?network={NET}#karma/{key('srv-4').public_key.hex()}"))
                )
                await expect(page.locator("#karma-result .score")).to_have_class(
                    "score red", timeout=WAIT_MS
                )
                await expect(page.locator("#karma-result tbody tr")).to_have_count(1)
                await expect(page.locator("#karma-result")).to_contain_text("cheating")
                await shot(page, "6-karma")
                # Referees for a code hash: one eligible, one dropped (it plays in the match).
                code = bytes(range(32))
                player = key("player-x")
                offers = [
                    sign_offer(
                        k,
                        NET,
                        code,
                        RefereeOffer(game="g1", players=(), endpoint=ep),
                        now=time.time(),
                    )
                    for k, ep in ((key("ref-1"), "127.0.40.1:9000"), (player, "127.0.40.2:9000"))
                ]
                assert await put_all(one, offers) == 2
                await page.click("nav a[data-page=referees]")
                await page.fill("#code-hash", code.hex())
                await page.fill("#players", player.public_key.hex())
                await page.click("#referee-form button")
                table = page.locator("#referee-result tbody tr")
                await expect(table).to_have_count(2, timeout=WAIT_MS)
                await expect(page.locator("#referee-result tr.status-kept")).to_contain_text(
                    "127.0.40.1:9000"
                )
                await expect(page.locator("#referee-result tr.status-dropped")).to_contain_text(
                    "referee is player"
                )
                await shot(page, "7-referees")
                await page.click("nav a[data-page=network]")
                await expect(page.locator("#card-peers .value")).to_have_text("1", timeout=WAIT_MS)
                await expect(page.locator("#rpc tbody tr").first).to_be_visible()
                await shot(page, "8-network")
                assert errors == []
            finally:
                await browser.close()

    asyncio.run(body())
