"""Verify a package: signature over the raw manifest bytes first, then fields, then digests.

The payload is streamed in fixed chunks through its digest (and, when asked, decryption, delta
application and the image digest), so memory stays bounded by the chunk size whatever the
image size; ``keep_image`` is the only thing that holds a whole image.
"""

from __future__ import annotations

import hashlib
import io
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from amiup.errors import error
from amiup.package import crypto, delta, envelope
from amiup.package.build import MANIFEST_CTY
from amiup.package.limits import DEFAULT_LIMITS, Limits
from amiup.package.manifest import Manifest, manifest_digest
from amiup.trust import cose
from amiup.trust.anchors import TrustAnchors
from amiup.trust.keys import PrivateKey

READ_CHUNK = 256 * 1024


@dataclass(frozen=True, slots=True)
class SignedManifest:
    """A manifest whose vendor signature verified, with the exact bytes that were signed."""

    manifest: Manifest
    manifest_bytes: bytes
    signed_header: bytes
    signer_ids: tuple[str, ...]

    @property
    def digest(self) -> bytes:
        return manifest_digest(self.manifest_bytes)


@dataclass(frozen=True, slots=True)
class VerifiedPackage:
    """Outcome of a full verification; ``image`` only when reconstructed and asked for."""

    signed: SignedManifest
    payload_sha256: bytes
    image_checked: bool
    image: bytes | None = None

    @property
    def manifest(self) -> Manifest:
        return self.signed.manifest

    @property
    def signer_ids(self) -> tuple[str, ...]:
        return self.signed.signer_ids


def verify_manifest(signed_header: bytes, anchors: TrustAnchors, *, threshold: int = 1,
                    limits: Limits = DEFAULT_LIMITS) -> SignedManifest:
    """Check vendor signatures over the raw manifest bytes, then parse the manifest."""
    if len(signed_header) > limits.max_header:
        raise error("too-large", f"signed header of {len(signed_header)} bytes > {limits.max_header}")
    doc = cose.decode_multi(signed_header, content_type=MANIFEST_CTY,
                            max_signatures=limits.max_signatures)
    vendors = anchors.keys("vendor")
    valid, bad_known, revoked, unknown = [], [], [], []
    for sig in doc.signatures:
        if sig.kid in anchors.revoked:
            revoked.append(sig.kid)
        elif sig.kid not in vendors:
            unknown.append(sig.kid)
        elif cose.check(doc, sig, vendors[sig.kid]):
            valid.append(sig.kid)
        else:
            bad_known.append(sig.kid)
    if len(set(valid)) < threshold:
        if bad_known:
            raise error("bad-signature", f"signature by vendor key {bad_known[0][:16]}… does not verify")
        if revoked:
            raise error("revoked-key", f"signed by revoked key {revoked[0][:16]}…")
        if unknown:
            raise error("unknown-key", f"signed by {unknown[0][:16]}…, not a trusted vendor key")
        raise error("threshold-not-met", f"{len(set(valid))} of {threshold} vendor signatures")
    manifest = Manifest.from_bytes(doc.payload, limits)
    return SignedManifest(manifest, doc.payload, signed_header, tuple(dict.fromkeys(valid)))


class _Sink:
    """A write-only stream that hashes and counts, optionally keeping the bytes."""

    def __init__(self, keep: bool) -> None:
        self.sha = hashlib.sha256()
        self.size = 0
        self.kept: io.BytesIO | None = io.BytesIO() if keep else None

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        if self.kept is not None:
            self.kept.write(data)
        return len(data)


def verify_stream(fp: BinaryIO, anchors: TrustAnchors, *, old_image: bytes | None = None,
                  decrypt_key: PrivateKey | None = None, keep_image: bool = False,
                  limits: Limits = DEFAULT_LIMITS) -> VerifiedPackage:
    """Verify a package read from ``fp`` (see module docstring for the order of checks)."""
    head = envelope.read_head(fp, limits)
    # A large in-memory payload is hashed on another core while the signature is checked;
    # the digest is only compared after the manifest is trusted, so the order of trust holds.
    ahead = (_hasher().submit(_sha256, fp.peek(head.payload_size))
             if isinstance(fp, _MemReader) and head.payload_size >= AHEAD_MIN else None)
    if ahead is not None:
        time.sleep(0)  # yield the GIL so the hasher enters hashlib (which drops it) right now
    signed = verify_manifest(head.signed_header, anchors, limits=limits)
    m = signed.manifest
    if head.payload_size != m.payload.size:
        raise error("size-mismatch", f"payload is {head.payload_size} bytes, manifest says {m.payload.size}")
    if m.payload.kind == "delta" and old_image is not None:
        base = hashlib.sha256(old_image).digest()
        if m.payload.from_sha256 != base:
            raise error("delta-base-mismatch", "the given old image is not this delta's base")
    decryptor = None
    if m.encryption is not None and decrypt_key is not None:
        decryptor = crypto.StreamDecryptor(m.encryption, decrypt_key)
    plain_available = m.encryption is None or decryptor is not None
    want_image = plain_available and (m.payload.kind == "full" or old_image is not None)

    payload_sha = hashlib.sha256()
    # A plain full image *is* the payload: one digest pass serves both checks.
    same_bytes = m.payload.kind == "full" and m.encryption is None
    image_sink = (_Sink(keep_image) if want_image and m.payload.kind == "full" and not same_bytes
                  else None)
    kept = io.BytesIO() if keep_image and same_bytes else None
    # A delta patch is spooled (memory up to 1 MiB, then a temp file) because detools
    # applies it as a seekable stream after the digest is known to be right.
    patch = (tempfile.SpooledTemporaryFile(max_size=1 << 20)  # noqa: SIM115 - closed in finally
             if want_image and m.payload.kind == "delta" else None)
    remaining = head.payload_size
    # In memory the payload is already resident: one zero-copy slice hashes fastest.
    step = remaining if isinstance(fp, _MemReader) and decryptor is None else READ_CHUNK
    only_digest = ahead is not None and image_sink is None and patch is None and kept is None
    if only_digest:
        assert ahead is not None
        if len(fp.read(remaining)) != remaining:
            raise error("malformed-package", "truncated: payload is short")
        payload_sha = _Precomputed(ahead.result())
        remaining = 0
    try:
        while remaining:
            chunk = fp.read(min(step, remaining))
            if not chunk:
                raise error("malformed-package", f"truncated: payload is {remaining} bytes short")
            remaining -= len(chunk)
            payload_sha.update(chunk)
            if kept is not None:
                kept.write(chunk)
            plain = decryptor.feed(chunk) if decryptor is not None else chunk
            if image_sink is not None:
                image_sink.write(plain)
            elif patch is not None:
                patch.write(plain)
        if fp.read(1):
            raise error("malformed-package", "trailing bytes after the payload")
        if payload_sha.digest() != m.payload.sha256:
            raise error("digest-mismatch", "payload SHA-256 differs from the signed manifest")
        if decryptor is not None:
            tail = decryptor.finish()
            if image_sink is not None:
                image_sink.write(tail)
            elif patch is not None:
                patch.write(tail)
        if patch is not None:
            assert old_image is not None
            patch.seek(0)
            image_sink = _Sink(keep_image)
            delta.apply_stream(io.BytesIO(old_image), patch, image_sink)  # type: ignore[arg-type]
    finally:
        if patch is not None:
            patch.close()
    if same_bytes:
        if head.payload_size != m.image.size:
            raise error("size-mismatch", f"image is {head.payload_size} bytes, manifest says {m.image.size}")
        if payload_sha.digest() != m.image.sha256:
            raise error("digest-mismatch", "image SHA-256 differs from the signed manifest")
        image = kept.getvalue() if kept is not None else None
        return VerifiedPackage(signed, payload_sha.digest(), True, image)
    if image_sink is not None:
        if image_sink.size != m.image.size:
            raise error("size-mismatch", f"image is {image_sink.size} bytes, manifest says {m.image.size}")
        if image_sink.sha.digest() != m.image.sha256:
            raise error("digest-mismatch", "image SHA-256 differs from the signed manifest")
    image = image_sink.kept.getvalue() if image_sink is not None and image_sink.kept is not None else None
    return VerifiedPackage(signed, payload_sha.digest(), image_sink is not None, image)


AHEAD_MIN = 1 << 20
_EXECUTOR: ThreadPoolExecutor | None = None


def _hasher() -> ThreadPoolExecutor:
    global _EXECUTOR
    if _EXECUTOR is None:
        _EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="amiup-sha")
    return _EXECUTOR


class _Precomputed:
    """Stands in for a hashlib object whose digest was computed ahead."""

    def __init__(self, digest: bytes) -> None:
        self._digest = digest

    def digest(self) -> bytes:
        return self._digest


def _sha256(data: memoryview) -> bytes:
    return hashlib.sha256(data).digest()


class _MemReader:
    """A file-like view of bytes in memory whose reads are zero-copy memoryview slices."""

    def __init__(self, data: bytes) -> None:
        self._mv = memoryview(data)
        self._pos = 0

    def peek(self, n: int) -> memoryview:
        """The next ``n`` bytes (or fewer, if truncated) without consuming them."""
        return self._mv[self._pos:self._pos + n]


    def read(self, n: int = -1) -> memoryview:
        end = len(self._mv) if n < 0 else min(len(self._mv), self._pos + n)
        out = self._mv[self._pos:end]
        self._pos = end
        return out


def verify_package(data: bytes, anchors: TrustAnchors, *, old_image: bytes | None = None,
                   decrypt_key: PrivateKey | None = None, keep_image: bool = False,
                   limits: Limits = DEFAULT_LIMITS) -> VerifiedPackage:
    """Verify package bytes held in memory (without copying the payload)."""
    reader: BinaryIO = _MemReader(data)  # type: ignore[assignment]
    return verify_stream(reader, anchors, old_image=old_image, decrypt_key=decrypt_key,
                         keep_image=keep_image, limits=limits)


def verify_file(path: Path, anchors: TrustAnchors, **kw: object) -> VerifiedPackage:
    """Verify a package file, streaming it from disk."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise error("not-found", f"no package file {path}") from None
    except OSError as ex:
        raise error("io-error", f"{path}: {ex.strerror}") from None
    with fh:
        return verify_stream(fh, anchors, **kw)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Package:
    """A decoded package, structure only (nothing trusted): for inspect and transport."""

    signed_header: bytes
    manifest_bytes: bytes
    signatures: tuple[cose.Signature, ...]
    payload: bytes
    manifest: Manifest


def decode_package(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Package:
    """Parse a package without verifying it (for ``inspect`` and for splitting into blocks)."""
    fp = io.BytesIO(data)
    head = envelope.read_head(fp, limits)
    payload = fp.read(head.payload_size)
    if len(payload) != head.payload_size:
        short = head.payload_size - len(payload)
        raise error("malformed-package", f"truncated: payload is {short} bytes short")
    if fp.read(1):
        raise error("malformed-package", "trailing bytes after the payload")
    doc = cose.decode_multi(head.signed_header, content_type=MANIFEST_CTY,
                            max_signatures=limits.max_signatures)
    return Package(head.signed_header, doc.payload, doc.signatures, payload,
                   Manifest.from_bytes(doc.payload, limits))
