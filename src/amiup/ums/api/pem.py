"""PEM <-> DER for P-256 public keys sent through the API (refusing anything else)."""

from __future__ import annotations

from cryptography.hazmat.primitives.serialization import load_pem_public_key

from amiup.errors import error
from amiup.trust import public_bytes, public_from_bytes


def pem_to_der(pem: str) -> bytes:
    """DER SubjectPublicKeyInfo of a P-256 public key in PEM; ``invalid-argument`` otherwise."""
    try:
        der = public_bytes(load_pem_public_key(pem.encode()))  # type: ignore[arg-type]
        public_from_bytes(der)
    except Exception:
        raise error("invalid-argument", "not a PEM P-256 public key") from None
    return der
