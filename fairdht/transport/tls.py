"""The QUIC endpoint's TLS identity: a throwaway self-signed certificate per process.

QUIC always runs TLS 1.3 (RFC 9001), so a server needs a certificate. fairdht does not
use it to authenticate anyone: the session's own handshake (docs/game-rules.md,
"Session channel") signs the referee's and the player's Ed25519 keys over both
ephemeral keys, so a man in the middle of the QUIC layer can read and relay only
SecureChannel ciphertext it cannot open or forge. Clients therefore do not verify the
certificate; a name-based PKI would add nothing that key has not already proven.
"""

from __future__ import annotations

import datetime
import functools

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["ALPN", "SERVER_NAME", "self_signed"]

# The application protocol named in the TLS handshake (RFC 7301): QUIC carrying the
# fairdht session's length-prefixed frames on one bidirectional stream.
ALPN = "fairdht-session/1"
SERVER_NAME = "fairdht"


@functools.cache
def self_signed() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A P-256 key and a self-signed certificate for it, made once per process."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SERVER_NAME)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return cert, key
