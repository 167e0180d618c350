"""Identity: Ed25519 keys, node ids and key files."""

from fairdht.identity.keyfile import default_data_dir, load_key, load_or_create_key, write_key
from fairdht.identity.keys import NODE_ID_BYTES, PublicKey, SigningKey, node_id_of, puzzle_bits

__all__ = [
    "NODE_ID_BYTES",
    "PublicKey",
    "SigningKey",
    "default_data_dir",
    "load_key",
    "load_or_create_key",
    "node_id_of",
    "puzzle_bits",
    "write_key",
]
