"""Trust anchors a meter or UMS holds, and the root-signed changes to them.

The rules follow TUF's root role: a new root is accepted only when it is the next version and
carries a threshold of valid signatures from the *current* root keys and from the *new* root
keys (so neither a stolen old key nor a made-up new set suffices). Revocation lists are signed
by a threshold of current root keys and only move forward, so a replayed older list cannot
un-revoke a compromised key.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from amiup.errors import error
from amiup.trust import cose
from amiup.trust.canonical import dumps, loads
from amiup.trust.keys import PrivateKey, PublicKey, key_id, public_bytes, public_from_bytes

ROOT_CTY = "application/amiup-root+cbor"
REVOCATION_CTY = "application/amiup-revocation+cbor"
TRUST_ROLES = ("root", "vendor", "utility")


@dataclass(frozen=True, slots=True)
class VerificationResult:
    """Which known keys signed, which did not, against a threshold (python-tuf's habit)."""

    threshold: int
    signed: frozenset[str]
    unsigned: frozenset[str]

    @property
    def verified(self) -> bool:
        return len(self.signed) >= self.threshold


def _key_list(raw: Any, what: str) -> tuple[bytes, ...]:
    if not isinstance(raw, list) or len(raw) > 64:
        raise error("malformed-package", f"{what}: expected a list of at most 64 keys")
    for der in raw:
        if not isinstance(der, bytes):
            raise error("malformed-package", f"{what}: keys must be DER bytes")
        public_from_bytes(der)
    return tuple(raw)


@dataclass(frozen=True, slots=True)
class RootMetadata:
    """The signed content of a root document: who is trusted for which role."""

    version: int
    threshold: int
    roots: tuple[bytes, ...]
    vendors: tuple[bytes, ...] = ()
    utilities: tuple[bytes, ...] = ()
    revoked: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.version < 1 or not 1 <= self.threshold <= max(1, len(self.roots)):
            raise error("malformed-package",
                        f"root v{self.version}: threshold {self.threshold} of {len(self.roots)} keys")

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "threshold": self.threshold, "roots": list(self.roots),
                "vendors": list(self.vendors), "utilities": list(self.utilities),
                "revoked": list(self.revoked)}

    @classmethod
    def from_dict(cls, d: Any) -> RootMetadata:
        if not isinstance(d, dict) or set(d) != {"version", "threshold", "roots", "vendors",
                                                 "utilities", "revoked"}:
            raise error("malformed-package", "root document has the wrong fields")
        if not all(isinstance(d[k], int) and not isinstance(d[k], bool)
                   for k in ("version", "threshold")):
            raise error("malformed-package", "root version and threshold must be integers")
        revoked = d["revoked"]
        if not isinstance(revoked, list) or not all(isinstance(k, str) for k in revoked):
            raise error("malformed-package", "root revoked list must hold key ids")
        return cls(d["version"], d["threshold"], _key_list(d["roots"], "roots"),
                   _key_list(d["vendors"], "vendors"), _key_list(d["utilities"], "utilities"),
                   tuple(revoked))


def sign_root(meta: RootMetadata, keys: list[PrivateKey]) -> bytes:
    """A root document signed by each of ``keys`` (old and new root keys for a rotation)."""
    return cose.sign_multi(dumps(meta.to_dict()), keys, ROOT_CTY)


def sign_revocations(version: int, revoked: Iterable[str], keys: list[PrivateKey]) -> bytes:
    """A revocation list (key ids) signed by root keys; ``version`` must grow each time."""
    body = dumps({"version": version, "revoked": sorted(set(revoked))})
    return cose.sign_multi(body, keys, REVOCATION_CTY)


def _index(keys: Iterable[bytes]) -> dict[str, PublicKey]:
    out = {}
    for der in keys:
        pub = public_from_bytes(der)
        out[key_id(pub)] = pub
    return out


@dataclass(frozen=True)
class TrustAnchors:
    """Immutable set of trusted public keys per role plus revoked key ids.

    Changes produce a new object (``apply_root``, ``apply_revocations``), so a failed check
    can never leave a half-updated trust set behind.
    """

    root: RootMetadata
    revocation_version: int = 0
    extra_revoked: frozenset[str] = frozenset()
    _keys: dict[str, dict[str, PublicKey]] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        self._keys.update({
            "root": _index(self.root.roots),
            "vendor": _index(self.root.vendors),
            "utility": _index(self.root.utilities),
        })

    @classmethod
    def create(cls, *, vendor: Iterable[PublicKey] = (), utility: Iterable[PublicKey] = (),
               root: Iterable[PublicKey] = (), threshold: int = 1,
               revoked: Iterable[str] = ()) -> TrustAnchors:
        """Factory-provisioned anchors (version 1 of the root)."""
        meta = RootMetadata(1, threshold, tuple(public_bytes(k) for k in root),
                            tuple(public_bytes(k) for k in vendor),
                            tuple(public_bytes(k) for k in utility), tuple(revoked))
        return cls(meta)

    @property
    def revoked(self) -> frozenset[str]:
        return frozenset(self.root.revoked) | self.extra_revoked

    def keys(self, role: str) -> dict[str, PublicKey]:
        """Trusted, unrevoked keys of ``role`` by key id."""
        if role not in TRUST_ROLES:
            raise error("invalid-argument", f"unknown trust role {role!r}")
        return {k: v for k, v in self._keys[role].items() if k not in self.revoked}

    def find(self, role: str, kid: str) -> PublicKey:
        """The trusted key ``kid`` of ``role``; ``revoked-key`` or ``unknown-key`` otherwise."""
        if kid in self.revoked:
            raise error("revoked-key", f"{role} key {kid[:16]}… is revoked")
        key = self.keys(role).get(kid)
        if key is None:
            raise error("unknown-key", f"{kid[:16]}… is not a trusted {role} key")
        return key

    def count_signatures(self, doc: cose.SignedDoc, keys: dict[str, PublicKey],
                         threshold: int) -> VerificationResult:
        """Count distinct valid signatures from ``keys`` on ``doc``."""
        signed = {s.kid for s in doc.signatures if s.kid in keys and cose.check(doc, s, keys[s.kid])}
        return VerificationResult(threshold, frozenset(signed), frozenset(keys) - signed)

    def apply_root(self, data: bytes) -> TrustAnchors:
        """Accept the next root only with threshold signatures of the old AND the new roots."""
        doc = cose.decode_multi(data, content_type=ROOT_CTY, max_signatures=64)
        new = RootMetadata.from_dict(loads(doc.payload, what="root document"))
        if new.version != self.root.version + 1:
            raise error("rollback-refused" if new.version <= self.root.version else "invalid-state",
                        f"root v{new.version} does not follow v{self.root.version}")
        old_res = self.count_signatures(doc, self.keys("root"), self.root.threshold)
        new_res = self.count_signatures(doc, _index(new.roots), new.threshold)
        for name, res in (("current", old_res), ("new", new_res)):
            if not res.verified:
                raise error("threshold-not-met", f"signed by {len(res.signed)} of the "
                            f"{res.threshold} required {name} root keys")
        return TrustAnchors(new, self.revocation_version, self.extra_revoked)

    def apply_revocations(self, data: bytes) -> TrustAnchors:
        """Accept a newer revocation list signed by a threshold of current root keys."""
        doc = cose.decode_multi(data, content_type=REVOCATION_CTY, max_signatures=64)
        res = self.count_signatures(doc, self.keys("root"), self.root.threshold)
        if not res.verified:
            raise error("threshold-not-met",
                        f"revocation list signed by {len(res.signed)} of {res.threshold} root keys")
        body = loads(doc.payload, what="revocation list")
        if not (isinstance(body, dict) and set(body) == {"version", "revoked"}
                and isinstance(body["version"], int) and isinstance(body["revoked"], list)
                and all(isinstance(k, str) for k in body["revoked"])):
            raise error("malformed-package", "revocation list has the wrong fields")
        if body["version"] <= self.revocation_version:
            raise error("rollback-refused", f"revocation list v{body['version']} is not newer "
                        f"than v{self.revocation_version}")
        return TrustAnchors(self.root, body["version"], frozenset(body["revoked"]))

    def to_dict(self) -> dict[str, Any]:
        return {"root": self.root.to_dict(), "revocation_version": self.revocation_version,
                "extra_revoked": sorted(self.extra_revoked)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrustAnchors:
        return cls(RootMetadata.from_dict(d["root"]), int(d["revocation_version"]),
                   frozenset(d["extra_revoked"]))

    def to_bytes(self) -> bytes:
        return dumps(self.to_dict())

    @classmethod
    def from_bytes(cls, data: bytes) -> TrustAnchors:
        return cls.from_dict(loads(data, what="trust anchors"))
