"""``GET /metrics``: the node's counters in the Prometheus text format (version 0.0.4).

The DHT's counter map (``DHTNode.metrics``) is exported by family: ``rpc.<name>.<outcome>``
as ``fairdht_rpc_total{rpc,outcome}``, ``dropped.<reason>`` as
``fairdht_dropped_datagrams_total{reason}``, ``store.refused.<code>`` as
``fairdht_store_refused_total{code}``, and every other counter as
``fairdht_dht_events_total{name}``. Gauges: peers, records, bytes held, uptime, event
subscribers. Refused API requests by reason. Histograms: DHT lookups made for API
requests, server-list rounds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from aiohttp import web

from fairdht.api.context import NODE
from fairdht.api.refusals import REFUSED
from fairdht.api.timing import LOOKUP_SECONDS
from fairdht.api.timing import install as install_timing
from fairdht.node.latency import Histogram

__all__ = ["CONTENT_TYPE", "get_metrics", "register", "render_metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _label(value: str) -> str:
    # Exposition format: backslash, double quote and newline are escaped in label values.
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf"
    return repr(float(value)) if isinstance(value, float) else str(value)


class _Text:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, metric: str, value: float, **labels: str) -> None:
        inner = ",".join(f'{k}="{_label(v)}"' for k, v in sorted(labels.items()))
        self.lines.append(
            f"{metric}{{{inner}}} {_number(value)}" if inner else f"{metric} {_number(value)}"
        )

    def histogram(self, name: str, help_text: str, hist: Histogram) -> None:
        self.family(name, "histogram", help_text)
        for bound, count in hist.cumulative():
            self.sample(f"{name}_bucket", count, le=_number(bound))
        self.sample(f"{name}_sum", hist.sum)
        self.sample(f"{name}_count", hist.count)


def _split(counters: dict[str, int], prefix: str) -> Iterable[tuple[str, int]]:
    for name, value in counters.items():
        if name.startswith(prefix):
            yield name[len(prefix) :], value


def render_metrics(app: web.Application) -> str:
    """The exposition text of everything the node counts."""
    node = app[NODE]
    counters = node.dht.metrics.snapshot()
    out = _Text()
    out.family("fairdht_peers", "gauge", "Contacts in the routing table.")
    out.sample("fairdht_peers", node.dht.peer_count())
    out.family("fairdht_records", "gauge", "Records held in this node's store.")
    out.sample("fairdht_records", node.store.count())
    out.family("fairdht_record_bytes", "gauge", "Bytes of the records held.")
    out.sample("fairdht_record_bytes", node.store.total_bytes())
    out.family("fairdht_uptime_seconds", "gauge", "Seconds since the node started.")
    out.sample("fairdht_uptime_seconds", round(node.uptime(), 3))

    rpc_rows = []
    for rest, value in _split(counters, "rpc."):
        rpc, _, outcome = rest.rpartition(".")
        if rpc:
            rpc_rows.append((rpc, outcome, value))
    out.family(
        "fairdht_rpc_total",
        "counter",
        "RPCs by type and outcome (sent, received, ok, timeout, late, bad_reply).",
    )
    for rpc, outcome, value in rpc_rows:
        out.sample("fairdht_rpc_total", value, rpc=rpc, outcome=outcome)
    out.family("fairdht_dropped_datagrams_total", "counter", "Datagrams dropped, by reason.")
    for reason, value in _split(counters, "dropped."):
        out.sample("fairdht_dropped_datagrams_total", value, reason=reason)
    out.family(
        "fairdht_store_refused_total", "counter", "STOREs from peers refused, by error code."
    )
    for code, value in _split(counters, "store.refused."):
        out.sample("fairdht_store_refused_total", value, code=code)
    out.family("fairdht_dht_events_total", "counter", "Every other DHT counter, by name.")
    for name, value in counters.items():
        if not name.startswith(("rpc.", "dropped.", "store.refused.")):
            out.sample("fairdht_dht_events_total", value, name=name)

    bus = node.events
    out.family("fairdht_events_published_total", "counter", "Events published on the node's bus.")
    out.sample("fairdht_events_published_total", bus.published)
    out.family("fairdht_event_subscribers", "gauge", "Open /api/events streams.")
    out.sample("fairdht_event_subscribers", bus.subscribers)
    out.family(
        "fairdht_event_subscribers_dropped_total", "counter", "Streams closed for falling behind."
    )
    out.sample("fairdht_event_subscribers_dropped_total", bus.dropped_subscribers)

    out.family(
        "fairdht_api_refused_total",
        "counter",
        "API requests refused before a route ran, by reason (host, streams, client_streams, json).",
    )
    refused = app.get(REFUSED)
    for reason in ("host", "streams", "client_streams", "json"):
        out.sample("fairdht_api_refused_total", refused[reason] if refused else 0, reason=reason)

    if LOOKUP_SECONDS in app:
        out.histogram(
            "fairdht_lookup_duration_seconds",
            "Duration of DHT gets made for API requests.",
            app[LOOKUP_SECONDS],
        )
    if node.live is not None:
        out.histogram(
            "fairdht_serverlist_round_duration_seconds",
            "Duration of a server-list replica round (every followed network).",
            node.live.round_seconds,
        )
    return "\n".join(out.lines) + "\n"


async def get_metrics(request: web.Request) -> web.Response:
    """The Prometheus exposition of the node's counters, gauges and histograms."""
    return web.Response(
        body=render_metrics(request.app).encode(),
        headers={"Content-Type": CONTENT_TYPE},
    )


def register(app: web.Application) -> None:
    """Add the metrics route."""
    install_timing(app)
    app.router.add_get("/metrics", get_metrics)
