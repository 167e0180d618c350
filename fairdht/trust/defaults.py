"""The maintainer key sets shipped with the package (``default_keys.json``)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from fairdht.identity.keys import SigningKey

__all__ = [
    "DEMO_NETWORK",
    "DEMO_PLACEHOLDER_SEED_TEXT",
    "DefaultSet",
    "demo_placeholder_key",
    "load_defaults",
    "parse_defaults",
]

DEMO_NETWORK = "demo"
# The demo network's maintainer key is a PLACEHOLDER: its seed is derived from this
# public text, so everyone can sign demo checkpoints. It exists so `make demo` can show
# a checkpoint and a rollback; a real network ships its own team keys instead.
DEMO_PLACEHOLDER_SEED_TEXT = b"fairdht demo network placeholder maintainer key -- NOT SECRET"


@dataclass(frozen=True, slots=True)
class DefaultSet:
    """A shipped key set of one (network, role) with its threshold."""

    keys: frozenset[bytes]
    threshold: int


def demo_placeholder_key() -> SigningKey:
    """The demo network's placeholder maintainer key (its secret is public, by design)."""
    return SigningKey(hashlib.blake2b(DEMO_PLACEHOLDER_SEED_TEXT, digest_size=32).digest())


def parse_defaults(doc: Any) -> dict[tuple[str, str], DefaultSet]:
    """Parse the JSON document of shipped key sets; raise ValueError if it is malformed."""
    if not isinstance(doc, dict) or not isinstance(doc.get("networks"), dict):
        raise ValueError("default key document must have a 'networks' object")
    out: dict[tuple[str, str], DefaultSet] = {}
    for network, roles in doc["networks"].items():
        if not isinstance(roles, dict):
            raise ValueError(f"network {network!r} must map roles to key sets")
        for role, entry in roles.items():
            keys = frozenset(bytes.fromhex(k) for k in entry["keys"])
            if any(len(k) != 32 for k in keys):
                raise ValueError(f"{network}/{role}: keys must be 32-byte hex")
            threshold = int(entry.get("threshold", 1))
            out[(network, role)] = DefaultSet(keys, threshold)
    return out


def load_defaults() -> dict[tuple[str, str], DefaultSet]:
    """The key sets shipped with this package, keyed by (network, role)."""
    text = resources.files("fairdht.trust").joinpath("default_keys.json").read_text("utf-8")
    return parse_defaults(json.loads(text))
