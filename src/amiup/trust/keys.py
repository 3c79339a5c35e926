"""ECDSA P-256 keys: generation, PEM files, key ids, ES256 signatures.

Signatures are the raw 64-byte ``r || s`` form COSE uses (RFC 9053 s.2.1), not DER, so the
bytes a meter checks are fixed-size and need no ASN.1 parser on the device.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from amiup.errors import error
from amiup.fsutil import atomic_write

PrivateKey = ec.EllipticCurvePrivateKey
PublicKey = ec.EllipticCurvePublicKey

ROLES: tuple[str, ...] = ("vendor", "utility", "root", "meter", "fieldtool")
"""Who holds a key: vendor signs images, utility signs orders, root signs trust changes,
meter signs its status reports and decrypts payloads, fieldtool authenticates at the port."""

_COORD = 32  # bytes per P-256 coordinate


def generate_key() -> PrivateKey:
    """A fresh P-256 private key from the OS's CSPRNG."""
    return ec.generate_private_key(ec.SECP256R1())


def public_bytes(public_key: PublicKey) -> bytes:
    """DER SubjectPublicKeyInfo: the canonical form key ids and trust sets are built on."""
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def public_from_bytes(der: bytes) -> PublicKey:
    """Parse a DER SubjectPublicKeyInfo; only P-256 keys are accepted."""
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, TypeError) as ex:
        raise error("malformed-package", f"bad public key encoding: {ex}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(
        key.curve, ec.SECP256R1
    ):
        raise error("malformed-package", "public key is not ECDSA P-256")
    return key


def key_id(public_key: PublicKey) -> str:
    """Hex SHA-256 of the DER public key: stable, collision-free name of a key."""
    return hashlib.sha256(public_bytes(public_key)).hexdigest()


def sign(private_key: PrivateKey, data: bytes) -> bytes:
    """ES256 signature of ``data`` as 64 raw bytes ``r || s``."""
    der = private_key.sign(data, ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return r.to_bytes(_COORD, "big") + s.to_bytes(_COORD, "big")


def verify_signature(public_key: PublicKey, signature: bytes, data: bytes) -> bool:
    """True when ``signature`` (raw ``r || s``) is valid; never raises on hostile input."""
    if not isinstance(signature, bytes) or len(signature) != 2 * _COORD:
        return False
    r = int.from_bytes(signature[:_COORD], "big")
    s = int.from_bytes(signature[_COORD:], "big")
    try:
        public_key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True


def save_private_key(private_key: PrivateKey, path: Path) -> None:
    """PKCS#8 PEM with mode 0600 (the file never exists with wider permissions)."""
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    atomic_write(Path(path), pem, 0o600)


def save_public_key(public_key: PublicKey, path: Path) -> None:
    """SubjectPublicKeyInfo PEM, world-readable (it is public)."""
    pem = public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    atomic_write(Path(path), pem, 0o644)


def _read(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise error("not-found", f"no key file {path}") from None
    except OSError as ex:
        raise error("io-error", f"{path}: {ex.strerror}") from None


def load_private_key(path: Path) -> PrivateKey:
    """Load a P-256 private key PEM; a wrong file gives ``invalid-argument``, not a trace."""
    try:
        key = serialization.load_pem_private_key(_read(path), password=None)
    except (ValueError, TypeError) as ex:
        raise error("invalid-argument", f"{path} is not an unencrypted PEM private key: {ex}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise error("invalid-argument", f"{path} is not an ECDSA P-256 private key")
    return key


def load_public_key(path: Path) -> PublicKey:
    """Load a P-256 public key PEM (a private key file is accepted and its public half used)."""
    data = _read(path)
    if b"PRIVATE KEY" in data:
        return load_private_key(path).public_key()
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as ex:
        raise error("invalid-argument", f"{path} is not a PEM public key: {ex}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise error("invalid-argument", f"{path} is not an ECDSA P-256 public key")
    return key
