"""``GET /``: the dashboard, plain HTML, JavaScript and CSS from ``fairdht/api/static``.

No build step and nothing from the internet: the page reads the same JSON API and
event stream a game client uses. Every value from the network is inserted as text,
never as HTML, because server names and notes are written by strangers.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

__all__ = ["STATIC_DIR", "favicon", "index", "register"]

STATIC_DIR = Path(__file__).with_name("static")

# The page loads only its own files; no inline script, no other origin (CSP level 3).
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


async def index(request: web.Request) -> web.FileResponse:
    """The dashboard page."""
    return web.FileResponse(
        STATIC_DIR / "index.html",
        headers={"Content-Security-Policy": _CSP, "Cache-Control": "no-cache"},
    )


async def favicon(request: web.Request) -> web.FileResponse:
    """The icon browsers ask for at /favicon.ico (an SVG; the page links it too)."""
    return web.FileResponse(
        STATIC_DIR / "favicon.svg",
        headers={"Content-Type": "image/svg+xml", "Cache-Control": "max-age=86400"},
    )


def register(app: web.Application) -> None:
    """Add the dashboard page, its icon and its static files."""
    app.router.add_get("/", index)
    app.router.add_get("/favicon.ico", favicon)
    app.router.add_static("/static/", STATIC_DIR, append_version=False)
