"""The referee package exports exactly its curated names, each of them real."""

from __future__ import annotations

import fairdht.referee as referee


def test_exports_resolve_and_are_sorted() -> None:
    for name in referee.__all__:
        assert getattr(referee, name) is not None
    assert len(set(referee.__all__)) == len(referee.__all__)
    public = {n for n in vars(referee) if not n.startswith("_")}
    modules = {
        "clusters",
        "codehash",
        "commit_reveal",
        "consensus",
        "eligibility",
        "fallback",
        "offers",
        "ranking",
        "selection",
    }
    assert public - modules == set(referee.__all__)
