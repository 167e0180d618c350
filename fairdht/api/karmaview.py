"""The node's own karma view of some subjects, read as ``fairdht karma show`` reads it.

The reader is the node's key; its policy, ``karma`` raters, distrusted keys and replay
marks come from the data dir (fairdht.node.karma_state). Every read raises the marks.
When a subject's (score, color) differs from the last one this node computed, a
``karma.changed`` event goes out on the node's bus.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from fairdht.api.context import NODE
from fairdht.api.timing import install as install_timing
from fairdht.api.timing import timed_get
from fairdht.app.karma import read_view as app_read_view
from fairdht.karma.fetch import FetchedView
from fairdht.karma.score import score_subject

__all__ = ["LAST_SCORES", "install", "read_view"]

# (network, subject) -> (score, color) last computed, to publish karma.changed.
LAST_SCORES = web.AppKey("fairdht.karma.last", dict[tuple[str, bytes], tuple[float, str]])
_MAX_REMEMBERED = 10_000


def install(app: web.Application) -> None:
    """Give ``app`` the score memory ``read_view`` needs (once, from any route module)."""
    if LAST_SCORES not in app:
        app[LAST_SCORES] = {}
    install_timing(app)


async def read_view(request: web.Request, network: str, subjects: Sequence[bytes]) -> FetchedView:
    """Crawl around this node (bounded by its policy) and build its view of ``subjects``."""
    node = request.app[NODE]
    now = node.clock()
    fetched = await app_read_view(
        timed_get(request, include_withdrawn=True, disjoint=True),
        node.data_dir.root,
        reader=node.public_key.raw,
        network=network,
        subjects=subjects,
        now=now,
    )
    last = request.app[LAST_SCORES]
    for subject in subjects:
        score = score_subject(fetched.view, subject)
        value = (round(score.score, 6), score.color)
        held = last.get((network, subject))
        if held is not None and held != value:
            node.events.publish(
                "karma.changed",
                {
                    "network": network,
                    "subject": subject.hex(),
                    "score": value[0],
                    "color": value[1],
                    "previous_score": held[0],
                    "previous_color": held[1],
                },
                now=now,
            )
        if held is None and len(last) >= _MAX_REMEMBERED:
            last.pop(next(iter(last)))
        last[(network, subject)] = value
    return fetched
