"""Payload confidentiality: AES-128-GCM in fixed chunks, content key wrapped per recipient.

One-shot GCM over a whole image would force a meter to buffer it all before it could check the
tag. So the payload is cut into ``chunk``-byte pieces, each sealed with its own nonce (base nonce
XOR chunk index) and an AAD that names the index and whether it is the last (the STREAM
construction), so reordering, truncation and extension all fail authentication. The 16-byte
content key is wrapped for each recipient with ECDH-ES (P-256, ephemeral key) + HKDF-SHA256 +
AES key wrap (RFC 3394), the COSE ``ECDH-ES+A128KW`` recipe.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from amiup.errors import error
from amiup.package.manifest import ENC_ALG, EncryptionInfo, Recipient
from amiup.trust.keys import PrivateKey, PublicKey, key_id

CHUNK = 4096
TAG = 16
_INFO = b"amiup ECDH-ES+A128KW v1"


def _kek(shared: bytes, epk: bytes, kid: str) -> bytes:
    return HKDF(hashes.SHA256(), 16, None, _INFO + epk + bytes.fromhex(kid)).derive(shared)


def _point(pub: PublicKey) -> bytes:
    return pub.public_bytes(serialization.Encoding.X962,
                            serialization.PublicFormat.UncompressedPoint)


def n_chunks(plain_size: int, chunk: int) -> int:
    """At least one chunk, so an empty payload still carries a final, authenticated chunk."""
    return max(1, -(-plain_size // chunk))


def _nonce(base: bytes, index: int) -> bytes:
    return (int.from_bytes(base, "big") ^ index).to_bytes(12, "big")


def _aad(index: int, last: bool) -> bytes:
    return b"amiup-chunk" + index.to_bytes(8, "big") + (b"\x01" if last else b"\x00")


def encrypt(plain: bytes, recipients: list[PublicKey], chunk: int = CHUNK) -> tuple[bytes, EncryptionInfo]:
    """Encrypt ``plain`` for ``recipients``; returns ciphertext and the manifest's info."""
    if not recipients:
        raise error("invalid-argument", "encryption needs at least one recipient key")
    cek = AESGCM.generate_key(bit_length=128)
    base = os.urandom(12)
    aead = AESGCM(cek)
    n = n_chunks(len(plain), chunk)
    out = [aead.encrypt(_nonce(base, i), plain[i * chunk:(i + 1) * chunk], _aad(i, i == n - 1))
           for i in range(n)]
    recs = []
    for pub in recipients:
        eph = ec.generate_private_key(ec.SECP256R1())
        epk = _point(eph.public_key())
        kid = key_id(pub)
        kek = _kek(eph.exchange(ec.ECDH(), pub), epk, kid)
        recs.append(Recipient(kid, epk, aes_key_wrap(kek, cek)))
    return b"".join(out), EncryptionInfo(ENC_ALG, base, chunk, len(plain), tuple(recs))


def unwrap_key(info: EncryptionInfo, private_key: PrivateKey) -> bytes:
    """The content key for ``private_key``'s holder, or ``decrypt-failed``."""
    kid = key_id(private_key.public_key())
    for r in info.recipients:
        if r.kid != kid:
            continue
        try:
            epk = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), r.epk)
            return aes_key_unwrap(_kek(private_key.exchange(ec.ECDH(), epk), r.epk, kid),
                                  r.wrapped_key)
        except (ValueError, InvalidUnwrap):
            raise error("decrypt-failed", "content key does not unwrap with this key") from None
    raise error("decrypt-failed", f"package is not encrypted for key {kid[:16]}…")


class StreamDecryptor:
    """Decrypts ciphertext fed in any slicing; holds at most one chunk (bounded memory)."""

    def __init__(self, info: EncryptionInfo, private_key: PrivateKey) -> None:
        self._aead = AESGCM(unwrap_key(info, private_key))
        self._info = info
        self._n = n_chunks(info.plain_size, info.chunk)
        self._i = 0
        self._buf = bytearray()
        self.plain_size = 0

    def _open(self, sealed: bytes) -> bytes:
        if self._i >= self._n:
            raise error("decrypt-failed", "ciphertext is longer than declared")
        last = self._i == self._n - 1
        try:
            plain = self._aead.decrypt(_nonce(self._info.nonce, self._i), sealed,
                                       _aad(self._i, last))
        except InvalidTag:
            raise error("decrypt-failed", f"chunk {self._i} fails authentication") from None
        self._i += 1
        self.plain_size += len(plain)
        return plain

    def feed(self, data: bytes) -> bytes:
        """Plaintext of every whole chunk now available (the last one waits for ``finish``)."""
        self._buf += data
        out = []
        full = self._info.chunk + TAG
        while len(self._buf) > full or (len(self._buf) == full and self._i < self._n - 1):
            out.append(self._open(bytes(self._buf[:full])))
            del self._buf[:full]
        return b"".join(out)

    def finish(self) -> bytes:
        """Open the final chunk and check nothing is missing or extra."""
        tail = self._open(bytes(self._buf)) if self._buf or self._i < self._n else b""
        self._buf.clear()
        if self._i != self._n or self.plain_size != self._info.plain_size:
            raise error("decrypt-failed", "ciphertext is truncated")
        return tail


def decrypt(cipher: bytes, info: EncryptionInfo, private_key: PrivateKey) -> bytes:
    """Whole-buffer convenience over ``StreamDecryptor``."""
    d = StreamDecryptor(info, private_key)
    return d.feed(cipher) + d.finish()


def iter_chunks(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]
