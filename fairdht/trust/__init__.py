"""Trust: which keys a node trusts per network and role, and the shipped defaults."""

from fairdht.trust.defaults import (
    DEMO_NETWORK,
    DefaultSet,
    demo_placeholder_key,
    load_defaults,
)
from fairdht.trust.quorum import Agreement, agreements
from fairdht.trust.rotation import Rotation, apply_rotations, find_rotation, sign_rotation
from fairdht.trust.store import MAX_THRESHOLD, ROLES, TrustStore

__all__ = [
    "DEMO_NETWORK",
    "MAX_THRESHOLD",
    "ROLES",
    "Agreement",
    "DefaultSet",
    "Rotation",
    "TrustStore",
    "agreements",
    "apply_rotations",
    "demo_placeholder_key",
    "find_rotation",
    "load_defaults",
    "sign_rotation",
]
