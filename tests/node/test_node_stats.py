"""The periodic statistics line groups the DHT's counters into stored, refused and dropped."""

from __future__ import annotations

from fairdht.node.runner import summarize_metrics


def test_counters_are_grouped_by_outcome() -> None:
    snapshot = {
        "store.accepted": 7,
        "store.refused.stale": 2,
        "store.refused.bad_signature": 3,
        "dropped.undecodable": 4,
        "dropped.oversize_reply": 1,
        "rpc.store.ok": 100,  # our own outgoing stores are not records we stored
        "put.refused.stale": 9,
    }
    assert summarize_metrics(snapshot) == {"stored": 7, "refused": 5, "dropped": 5}
    assert summarize_metrics({}) == {"stored": 0, "refused": 0, "dropped": 0}
