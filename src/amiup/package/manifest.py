"""The manifest model: what a package claims, parsed strictly from untrusted CBOR.

Parsing happens only after the signature over the raw manifest bytes has been checked
(``verify.py``), but it is strict all the same: every field typed, every string and list
capped, unknown fields kept (so a newer signer's manifest round-trips) yet never trusted.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from amiup import COMPONENTS
from amiup.errors import error
from amiup.package.limits import DEFAULT_LIMITS, Limits
from amiup.package.semver import OPS, is_version
from amiup.trust.canonical import dumps, loads

FORMAT_VERSION = 1
KINDS = ("full", "delta")
COMPRESSIONS = ("none", "heatshrink")
ENC_ALG = "A128GCM-STREAM"
COMM_COMPONENTS = ("ami_comm", "han_comm", "han_app")


def _bad(what: str) -> Exception:
    return error("malformed-package", what)


def _int(d: dict[str, Any], key: str, lo: int = 0, hi: int = 2**63 - 1) -> int:
    v = d.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise _bad(f"field {key!r} must be an integer in [{lo}, {hi}]")
    return v


def _str(d: dict[str, Any], key: str, cap: int, *, optional: bool = False) -> str:
    v = d.get(key)
    if v is None and optional:
        return ""
    if not isinstance(v, str) or not (0 if optional else 1) <= len(v) <= cap:
        raise _bad(f"field {key!r} must be a string of at most {cap} characters")
    return v


def _digest(d: dict[str, Any], key: str) -> bytes:
    v = d.get(key)
    if not isinstance(v, bytes) or len(v) != 32:
        raise _bad(f"field {key!r} must be a 32-byte SHA-256 digest")
    return v


def _map(d: dict[str, Any], key: str) -> dict[str, Any]:
    v = d.get(key)
    if not isinstance(v, dict) or not all(isinstance(k, str) for k in v):
        raise _bad(f"field {key!r} must be a map with text keys")
    return v


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """The image as installed in the slot."""

    size: int
    sha256: bytes


@dataclass(frozen=True, slots=True)
class PayloadInfo:
    """The bytes sent: a full image or a delta, maybe compressed, maybe encrypted."""

    kind: str
    size: int
    sha256: bytes
    compression: str = "none"
    from_sha256: bytes | None = None


@dataclass(frozen=True, slots=True)
class Recipient:
    """A content key wrapped for one receiver (ECDH-ES P-256 + HKDF + AES key wrap)."""

    kid: str
    epk: bytes
    wrapped_key: bytes


@dataclass(frozen=True, slots=True)
class EncryptionInfo:
    """AES-128-GCM over fixed-size chunks so a meter decrypts a stream in bounded memory."""

    alg: str
    nonce: bytes
    chunk: int
    plain_size: int
    recipients: tuple[Recipient, ...]


@dataclass(frozen=True, slots=True)
class Requirement:
    """A dependency on another component's running version, e.g. ``ami_app >= 2.0.0``."""

    component: str
    op: str
    version: str

    def __str__(self) -> str:
        return f"{self.component}{self.op}{self.version}"

    @classmethod
    def parse(cls, text: str) -> Requirement:
        for op in OPS:  # two-character operators come first in OPS
            if op in text:
                comp, _, ver = text.partition(op)
                req = cls(comp.strip(), op, ver.strip())
                if req.component in COMPONENTS and is_version(req.version):
                    return req
        raise error("invalid-argument",
                    f"bad dependency {text!r}: expected COMPONENT>=VERSION, e.g. ami_app>=2.0.0")


@dataclass(frozen=True, slots=True)
class LegalInfo:
    """Legal metrology identity (type approval, legally relevant software version)."""

    approval_ref: str
    legal_version: str


@dataclass(frozen=True, slots=True)
class Manifest:
    """Everything a package says about itself; see docs/package-format.md."""

    vendor: str
    model: str
    hw_revs: tuple[str, ...]
    component: str
    version: str
    security_seq: int
    image: ImageInfo
    payload: PayloadInfo
    encryption: EncryptionInfo | None = None
    requires: tuple[Requirement, ...] = ()
    protocol: str | None = None
    legal: LegalInfo | None = None
    created: int = 0
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"kind": self.payload.kind, "size": self.payload.size,
                                   "sha256": self.payload.sha256,
                                   "compression": self.payload.compression}
        if self.payload.from_sha256 is not None:
            payload["from_sha256"] = self.payload.from_sha256
        d: dict[str, Any] = dict(self.extra)
        d.update({
            "v": FORMAT_VERSION, "vendor": self.vendor, "model": self.model,
            "hw_revs": list(self.hw_revs), "component": self.component, "version": self.version,
            "security_seq": self.security_seq,
            "image": {"size": self.image.size, "sha256": self.image.sha256},
            "payload": payload, "requires": [[r.component, r.op, r.version] for r in self.requires],
            "created": self.created, "notes": self.notes,
        })
        if self.encryption is not None:
            e = self.encryption
            d["encryption"] = {"alg": e.alg, "nonce": e.nonce, "chunk": e.chunk,
                               "plain_size": e.plain_size,
                               "recipients": [[r.kid, r.epk, r.wrapped_key] for r in e.recipients]}
        if self.protocol is not None:
            d["protocol"] = self.protocol
        if self.legal is not None:
            d["legal"] = {"approval_ref": self.legal.approval_ref,
                          "legal_version": self.legal.legal_version}
        return d

    def to_bytes(self) -> bytes:
        return dumps(self.to_dict())

    @classmethod
    def from_bytes(cls, data: bytes, limits: Limits = DEFAULT_LIMITS) -> Manifest:
        if len(data) > limits.max_manifest:
            raise error("too-large", f"manifest of {len(data)} bytes > {limits.max_manifest}")
        return cls.from_dict(loads(data, what="manifest"), limits)

    @classmethod
    def from_dict(cls, d: Any, limits: Limits = DEFAULT_LIMITS) -> Manifest:
        if not isinstance(d, dict) or not all(isinstance(k, str) for k in d):
            raise _bad("manifest must be a map with text keys")
        if d.get("v") != FORMAT_VERSION:
            raise _bad(f"manifest format {d.get('v')!r} is not supported (want {FORMAT_VERSION})")
        t = limits.max_text
        component = _str(d, "component", t)
        if component not in COMPONENTS:
            raise _bad(f"unknown component {component!r}")
        version = _str(d, "version", t)
        if not is_version(version):
            raise _bad(f"version {version!r} is not semver")
        hw = d.get("hw_revs")
        if not (isinstance(hw, list) and 1 <= len(hw) <= 32
                and all(isinstance(h, str) and 0 < len(h) <= t for h in hw)):
            raise _bad("hw_revs must be a non-empty list of strings")
        im = _map(d, "image")
        image = ImageInfo(_int(im, "size", 0, limits.max_image), _digest(im, "sha256"))
        pl = _map(d, "payload")
        kind = _str(pl, "kind", 16)
        compression = _str(pl, "compression", 16)
        if kind not in KINDS or compression not in COMPRESSIONS:
            raise _bad(f"payload kind {kind!r} / compression {compression!r} not supported")
        from_sha = _digest(pl, "from_sha256") if kind == "delta" else None
        payload = PayloadInfo(kind, _int(pl, "size", 0, limits.max_payload),
                              _digest(pl, "sha256"), compression, from_sha)
        reqs_raw = d.get("requires", [])
        if not isinstance(reqs_raw, list) or len(reqs_raw) > limits.max_requires:
            raise _bad(f"requires must be a list of at most {limits.max_requires}")
        requires = []
        for r in reqs_raw:
            if not (isinstance(r, list) and len(r) == 3 and r[0] in COMPONENTS and r[1] in OPS
                    and is_version(r[2])):
                raise _bad(f"bad dependency {r!r}")
            requires.append(Requirement(r[0], r[1], r[2]))
        enc = None
        if "encryption" in d:
            e = _map(d, "encryption")
            if e.get("alg") != ENC_ALG:
                raise _bad(f"encryption algorithm {e.get('alg')!r} is not supported")
            nonce = e.get("nonce")
            if not isinstance(nonce, bytes) or len(nonce) != 12:
                raise _bad("encryption nonce must be 12 bytes")
            rec_raw = e.get("recipients")
            if not isinstance(rec_raw, list) or not 1 <= len(rec_raw) <= limits.max_recipients:
                raise _bad("encryption needs 1..16 recipients")
            recs = []
            for r in rec_raw:
                if not (isinstance(r, list) and len(r) == 3 and isinstance(r[0], str)
                        and len(r[0]) == 64 and isinstance(r[1], bytes) and len(r[1]) == 65
                        and isinstance(r[2], bytes) and len(r[2]) == 24):
                    raise _bad("bad encryption recipient")
                recs.append(Recipient(r[0], r[1], r[2]))
            enc = EncryptionInfo(ENC_ALG, nonce, _int(e, "chunk", 256, 65536),
                                 _int(e, "plain_size", 0, limits.max_payload), tuple(recs))
        protocol = _str(d, "protocol", t) if "protocol" in d else None
        legal = None
        if "legal" in d:
            lg = _map(d, "legal")
            legal = LegalInfo(_str(lg, "approval_ref", t), _str(lg, "legal_version", t))
        known = {"v", "vendor", "model", "hw_revs", "component", "version", "security_seq",
                 "image", "payload", "requires", "created", "notes", "encryption", "protocol",
                 "legal"}
        return cls(
            vendor=_str(d, "vendor", t), model=_str(d, "model", t), hw_revs=tuple(hw),
            component=component, version=version,
            security_seq=_int(d, "security_seq", 0, 2**32 - 1), image=image, payload=payload,
            encryption=enc, requires=tuple(requires), protocol=protocol, legal=legal,
            created=_int(d, "created"), notes=_str(d, "notes", limits.max_notes, optional=True),
            extra={k: v for k, v in d.items() if k not in known},
        )


def manifest_digest(manifest_bytes: bytes) -> bytes:
    """SHA-256 of the signed manifest bytes: the package's identity, named by upgrade orders."""
    return hashlib.sha256(manifest_bytes).digest()
