"""Build a signed ``.amiup`` package from an image (full or delta, optionally encrypted)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from pathlib import Path

from amiup import COMPONENTS
from amiup.errors import error
from amiup.fsutil import atomic_write
from amiup.package import crypto, delta, envelope
from amiup.package.limits import DEFAULT_LIMITS, Limits
from amiup.package.manifest import (
    COMM_COMPONENTS,
    ImageInfo,
    LegalInfo,
    Manifest,
    PayloadInfo,
    Requirement,
)
from amiup.package.semver import is_version
from amiup.trust import cose
from amiup.trust.keys import PrivateKey, PublicKey

MANIFEST_CTY = "application/amiup-manifest+cbor"


def build_package(image: bytes, *, component: str, version: str, security_seq: int,
                  vendor: str, model: str, hw_revs: Sequence[str], sign_keys: Sequence[PrivateKey],
                  requires: Sequence[Requirement | str] = (), delta_from: bytes | None = None,
                  encrypt_for: Sequence[PublicKey] = (), legal: LegalInfo | None = None,
                  protocol: str | None = None, notes: str = "", created: int | None = None,
                  limits: Limits = DEFAULT_LIMITS) -> bytes:
    """The bytes of a signed package; every argument is checked before anything is signed."""
    if component not in COMPONENTS:
        raise error("invalid-argument", f"component {component!r}: one of {', '.join(COMPONENTS)}")
    if not is_version(version):
        raise error("invalid-argument", f"version {version!r} is not semver like 1.2.3")
    if not 0 <= security_seq < 2**32:
        raise error("invalid-argument", "security_seq must be in [0, 2^32)")
    if not hw_revs:
        raise error("invalid-argument", "at least one --hw-rev is needed")
    for name, text in (("vendor", vendor), ("model", model), *(("hw-rev", h) for h in hw_revs)):
        if not text or len(text) > limits.max_text:
            raise error("invalid-argument", f"{name} must be 1..{limits.max_text} characters")
    if component == "metrology" and legal is None:
        raise error("legal-fields-missing",
                    "metrology packages need --legal-ref and a legally relevant version")
    if protocol is not None and component not in COMM_COMPONENTS:
        raise error("invalid-argument", f"--protocol applies to {', '.join(COMM_COMPONENTS)}")
    if len(image) > limits.max_image:
        raise error("too-large", f"image of {len(image)} bytes > {limits.max_image}")
    reqs = tuple(r if isinstance(r, Requirement) else Requirement.parse(r) for r in requires)

    if delta_from is not None:
        payload, kind, compression = delta.create(delta_from, image), "delta", delta.COMPRESSION
        from_sha = hashlib.sha256(delta_from).digest()
    else:
        payload, kind, from_sha, compression = image, "full", None, "none"
    enc = None
    if encrypt_for:
        payload, enc = crypto.encrypt(payload, list(encrypt_for))
    if len(payload) > limits.max_payload:
        raise error("too-large", f"payload of {len(payload)} bytes > {limits.max_payload}")

    manifest = Manifest(
        vendor=vendor, model=model, hw_revs=tuple(hw_revs), component=component, version=version,
        security_seq=security_seq,
        image=ImageInfo(len(image), hashlib.sha256(image).digest()),
        payload=PayloadInfo(kind, len(payload), hashlib.sha256(payload).digest(), compression,
                            from_sha),
        encryption=enc, requires=reqs, protocol=protocol, legal=legal,
        created=int(time.time()) if created is None else created, notes=notes,
    )
    mbytes = manifest.to_bytes()
    if len(mbytes) > limits.max_manifest:
        raise error("too-large", f"manifest of {len(mbytes)} bytes > {limits.max_manifest}")
    header = cose.sign_multi(mbytes, list(sign_keys), MANIFEST_CTY)
    return envelope.encode(header, payload)


def write_atomic(path: Path, data: bytes) -> None:
    """Write a file so that a crash or error never leaves a half-written package behind."""
    path = Path(path)
    if not path.parent.is_dir():
        raise error("not-found", f"output folder {path.parent} does not exist")
    atomic_write(path, data)
