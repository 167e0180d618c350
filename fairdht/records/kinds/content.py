"""Kind ``bundle``: a signed manifest naming the files of a game bundle (Inexor seed, "signing content").

The subkey is the bundle's code hash and the DHT key derives from (network, code
hash), so every signer's manifest of one bundle lives under one key; a fetcher keeps
the manifests whose author its ``content`` trust role names. The file list itself is
a content-addressed blob (fairdht.content.blobs) named by ``manifest``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

from fairdht.records.keys import derive_key
from fairdht.records.registry import KindSpec, register_kind
from fairdht.records.schema import expect_map, get_bytes, get_int

__all__ = ["BUNDLE_KIND", "BUNDLE_MAX_TTL", "MAX_BUNDLE_BYTES", "BundleManifest", "bundle_key"]

BUNDLE_KIND = "bundle"
BUNDLE_MAX_TTL = 7 * 24 * 3600
MAX_BUNDLE_BYTES = 2**40
MAX_BUNDLE_FILES = 100_000


@dataclass(frozen=True, slots=True)
class BundleManifest:
    """A signer's statement that blob ``manifest`` lists the files of the bundle (the subkey)."""

    manifest: bytes
    files: int
    size: int

    def to_wire(self) -> dict[str, Any]:
        """The canonical map."""
        return {"manifest": self.manifest, "files": self.files, "size": self.size}

    @classmethod
    def from_wire(cls, obj: Any) -> Self:
        """Parse an untrusted map."""
        m = expect_map(obj, {"manifest", "files", "size"})
        return cls(
            manifest=get_bytes(m, "manifest", length=32),
            files=get_int(m, "files", lo=0, hi=MAX_BUNDLE_FILES),
            size=get_int(m, "size", lo=0, hi=MAX_BUNDLE_BYTES),
        )


def bundle_key(network: str, code_hash: bytes) -> bytes:
    """The DHT key of every manifest of the bundle ``code_hash`` on ``network``."""
    return derive_key("bundle", network.encode(), code_hash)


register_kind(
    KindSpec(
        name=BUNDLE_KIND,
        body_type=BundleManifest,
        max_ttl=BUNDLE_MAX_TTL,
        key_tag="bundle",
        key_parts=lambda network, author, subkey: (network.encode(), subkey),
        subkey_len=(32, 32),
    )
)
