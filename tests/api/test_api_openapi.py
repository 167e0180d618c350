"""The OpenAPI document describes exactly the routes the app serves; the dashboard's files."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from apikit import api_nodes, run

from fairdht.api.dashboard import STATIC_DIR
from fairdht.api.openapi import openapi_document


def _refs(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [value["$ref"]] if "$ref" in value else []
        return found + [r for v in value.values() for r in _refs(v)]
    if isinstance(value, list):
        return [r for v in value for r in _refs(v)]
    return []


def test_the_document_lists_every_route_and_only_those(tmp_path: Path) -> None:
    async def body() -> None:
        async with api_nodes(tmp_path, 1) as (one,):
            served = await one.json("/api/openapi.json")
            assert served == json.loads(json.dumps(openapi_document()))
            assert served["openapi"] == "3.1.0"
            routes = set()
            for route in one.http.app.router.routes():  # type: ignore[union-attr]
                info = route.resource.get_info() if route.resource else {}
                path = info.get("path") or info.get("formatter") or info.get("prefix")
                if route.method == "HEAD" or path.startswith("/static"):
                    continue
                routes.add((path, route.method.lower()))
            documented = {(p, m) for p, ops in served["paths"].items() for m in ops}
            assert routes == documented
            schemas = served["components"]["schemas"]
            for ref in _refs(served):
                assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas
            for path, ops in served["paths"].items():
                for params in (op.get("parameters", []) for op in ops.values()):
                    names = {p["name"] for p in params if p["in"] == "path"}
                    assert names == set(re.findall(r"\{(\w+)\}", path)), path
                for method, op in ops.items():
                    if method in {"post", "delete"}:
                        assert op["security"] == [{"token": []}] and "401" in op["responses"]

    run(body)


def test_the_dashboard_is_served_with_its_own_files_only(tmp_path: Path) -> None:
    async def body() -> None:
        async with api_nodes(tmp_path, 1) as (one,):
            page = await one.http.get("/")
            assert page.status == 200 and page.content_type == "text/html"
            assert "default-src 'self'" in page.headers["Content-Security-Policy"]
            html = await page.text()
            linked = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
            assert sorted(linked) == ["/static/app.js", "/static/favicon.svg", "/static/style.css"]
            for path, kind in (
                ("/static/app.js", "javascript"),
                ("/static/style.css", "text/css"),
                ("/static/favicon.svg", "image/svg+xml"),
                ("/favicon.ico", "image/svg+xml"),  # browsers ask for it whatever the page says
            ):
                response = await one.http.get(path)
                assert response.status == 200 and kind in response.content_type
            missing = await one.http.get("/static/nope.js")
            assert missing.status == 404
            escape = await one.http.get("/static/../app.py")
            assert escape.status in (403, 404)

    run(body)


def test_static_files_load_nothing_from_the_internet_and_never_inject_html() -> None:
    names = sorted(p.name for p in STATIC_DIR.iterdir())
    assert names == ["app.js", "favicon.svg", "index.html", "style.css"]
    for path in STATIC_DIR.iterdir():
        # The SVG namespace URI names an XML vocabulary (xmlns, createElementNS);
        # nothing is ever fetched from it.
        text = path.read_text().replace("http://www.w3.org/2000/svg", "")
        assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/|@import", text), path.name
    script = (STATIC_DIR / "app.js").read_text()
    # Server names and notes come from strangers: text only, no HTML parsing, no eval.
    for sink in (
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
    ):
        assert sink not in script, sink
