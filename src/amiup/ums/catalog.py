"""The package catalog (UMS-2): verify on import against registered vendor keys, store by hash.

A package is checked with :func:`amiup.package.verify_package` against the keys registered
for the vendor its manifest names, so one vendor's key can never vouch for another vendor's
package. Only then is the file written, atomically, to ``<blob_dir>/<sha256[:2]>/<sha256>``
and its metadata inserted. Refusals keep their stable codes (``bad-signature``,
``digest-mismatch``, ``unknown-key``, ``malformed-package``...) and are audited too.
Importing the same file twice is harmless: the existing entry is returned.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from amiup.errors import AmiupError, error
from amiup.package import decode_package, verify_package, write_atomic
from amiup.trust import TrustAnchors, key_id, public_bytes, public_from_bytes
from amiup.trust.keys import PublicKey
from amiup.ums import audit
from amiup.ums.models import Package, VendorKey
from amiup.ums.store import Store
from amiup.ums.versions import try_key

MAX_PACKAGE_BYTES = 512 * 1024 * 1024


def _jsonable(value: Any) -> Any:
    """Manifest dict with bytes as hex, so it fits a JSON column."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def add_vendor_key(session: Session, *, vendor: str, public_key: PublicKey | bytes, now: float,
                   actor: str) -> VendorKey:
    """Trust ``public_key`` (object or DER) for packages of ``vendor`` (audited)."""
    if not vendor or len(vendor) > 128:
        raise error("invalid-argument", "vendor: 1..128 characters")
    pub = public_from_bytes(public_key) if isinstance(public_key, bytes) else public_key
    kid = key_id(pub)
    if session.scalar(select(VendorKey.id).where(VendorKey.key_id == kid)) is not None:
        raise error("conflict", f"vendor key {kid[:16]}… is registered already")
    row = VendorKey(vendor=vendor, key_id=kid, public_der=public_bytes(pub), added_by=actor,
                    added_at=now, revoked=False)
    session.add(row)
    session.flush()
    audit.record(session, at=now, actor=actor, action="vendor_key.add",
                 object=f"vendor_key:{kid}", after={"vendor": vendor, "key_id": kid})
    return row


def revoke_vendor_key(session: Session, *, key_id_hex: str, now: float, actor: str) -> VendorKey:
    """Stop trusting a vendor key for new imports (audited)."""
    row = session.scalar(select(VendorKey).where(VendorKey.key_id == key_id_hex))
    if row is None:
        raise error("not-found", f"no vendor key {key_id_hex[:16]}…")
    row.revoked = True
    audit.record(session, at=now, actor=actor, action="vendor_key.revoke",
                 object=f"vendor_key:{row.key_id}", before={"revoked": False},
                 after={"revoked": True})
    return row


def anchors_for(session: Session, vendor: str) -> TrustAnchors:
    """Trust anchors with the keys registered for ``vendor`` (revoked ones marked revoked)."""
    rows = session.execute(select(VendorKey.public_der, VendorKey.key_id, VendorKey.revoked)
                           .where(VendorKey.vendor == vendor)).all()
    return TrustAnchors.create(vendor=[public_from_bytes(r[0]) for r in rows],
                               revoked=[r[1] for r in rows if r[2]])


def blob_path(blob_dir: Path, file_sha256: str) -> Path:
    """Where a package file with this SHA-256 lives."""
    return blob_dir / file_sha256[:2] / file_sha256


def _verify(store: Store, data: bytes) -> tuple[Any, str]:
    """(verified package, claimed vendor): vendor from the unverified header, then verified.

    Only the key lookup touches the store (a read), so a slow verification of a large
    package never holds the write lock.
    """
    if len(data) > MAX_PACKAGE_BYTES:
        raise error("too-large", f"package of {len(data)} bytes > {MAX_PACKAGE_BYTES}")
    claimed = decode_package(data).manifest.vendor  # structure only; nothing trusted yet
    with store.session(readonly=True) as db:
        anchors = anchors_for(db, claimed)
    if not anchors.keys("vendor") and not anchors.revoked:
        raise error("unknown-key", f"no trusted key is registered for vendor {claimed[:64]!r}")
    verified = verify_package(data, anchors)
    if verified.manifest.vendor != claimed:  # pragma: no cover - same bytes, same parse
        raise error("wrong-vendor", "manifest vendor changed between parses")
    return verified, claimed


def import_package(store: Store, data: bytes, *, now: float, actor: str) -> Package:
    """Verify ``data`` and add it to the catalog; refusals raise with their code, audited."""
    file_sha = hashlib.sha256(data).hexdigest()
    try:
        with store.session(readonly=True) as db:
            existing = db.scalar(select(Package).where(Package.file_sha256 == file_sha))
        if existing is not None:
            return existing
        verified, vendor = _verify(store, data)
        m = verified.manifest
        with store.session() as db:
            existing = db.scalar(select(Package).where(Package.file_sha256 == file_sha))
            if existing is not None:  # imported meanwhile by someone else
                return existing
            digest = verified.signed.digest.hex()
            if db.scalar(select(Package.id).where(Package.digest == digest)) is not None:
                raise error("conflict", f"a package with manifest digest {digest[:16]}… exists "
                                        f"(different file bytes)")
            path = blob_path(store.blob_dir, file_sha)
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                write_atomic(path, data)
            pkg = Package(
                digest=digest, file_sha256=file_sha, size=len(data), vendor=m.vendor,
                model=m.model, hw_revs=list(m.hw_revs), component=m.component,
                version=m.version, version_key=try_key(m.version), security_seq=m.security_seq,
                payload_kind=m.payload.kind,
                from_sha256=m.payload.from_sha256.hex() if m.payload.from_sha256 else None,
                encrypted=m.encryption is not None,
                metrology=m.component == "metrology" or m.legal is not None,
                legal_ref=m.legal.approval_ref if m.legal else None,
                manifest=_jsonable(m.to_dict()), signer_ids=list(verified.signer_ids),
                notes=m.notes, uploaded_by=actor, uploaded_at=now,
            )
            db.add(pkg)
            db.flush()
            audit.record(db, at=now, actor=actor, action="package.import",
                         object=f"package:{pkg.id}",
                         after={"digest": digest, "file_sha256": file_sha, "vendor": vendor,
                                "model": m.model, "component": m.component,
                                "version": m.version, "signers": pkg.signer_ids})
            return pkg
    except AmiupError as exc:
        with store.session() as db:
            audit.record(db, at=now, actor=actor, action="package.import",
                         object=f"file:{file_sha}", outcome=exc.code,
                         after={"size": len(data), "detail": exc.detail})
        raise


def read_package(store: Store, pkg: Package) -> bytes:
    """The package file, checked against its SHA-256 (a corrupted blob is an ``io-error``)."""
    path = blob_path(store.blob_dir, pkg.file_sha256)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise error("io-error", f"package file {pkg.file_sha256[:16]}…: {exc.strerror}") from None
    if hashlib.sha256(data).hexdigest() != pkg.file_sha256:
        raise error("digest-mismatch", f"package file {pkg.file_sha256[:16]}… changed on disk")
    return data


def get(session: Session, ref: str | int) -> Package:
    """A package by id, manifest digest or file SHA-256 (a unique prefix of 8+ hex works)."""
    if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit() and len(ref) < 12):
        pkg = session.get(Package, int(ref))
    else:
        ref = ref.lower()
        if len(ref) < 8:
            raise error("invalid-argument", "give at least 8 hex digits of a digest")
        rows = session.scalars(select(Package).where(or_(
            Package.digest.startswith(ref), Package.file_sha256.startswith(ref))).limit(2)).all()
        if len(rows) > 1:
            raise error("invalid-argument", f"digest prefix {ref!r} is ambiguous")
        pkg = rows[0] if rows else None
    if pkg is None:
        raise error("not-found", f"no package {ref!r}")
    return pkg


def search(session: Session, *, vendor: str | None = None, model: str | None = None,
           component: str | None = None, version: str | None = None, text: str | None = None,
           metrology: bool | None = None, limit: int = 100, offset: int = 0,
           ) -> tuple[int, Sequence[Package]]:
    """(total, page) of packages matching every given criterion, newest version first."""
    conds = []
    if vendor:
        conds.append(Package.vendor == vendor)
    if model:
        conds.append(Package.model == model)
    if component:
        conds.append(Package.component == component)
    if version:
        conds.append(Package.version == version)
    if metrology is not None:
        conds.append(Package.metrology.is_(metrology))
    if text:
        like = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        conds.append(or_(Package.notes.like(like, escape="\\"),
                         Package.model.like(like, escape="\\"),
                         Package.vendor.like(like, escape="\\"),
                         Package.version.like(like, escape="\\")))
    total = session.scalar(select(func.count()).select_from(Package).where(*conds)) or 0
    rows = session.scalars(
        select(Package).where(*conds)
        .order_by(Package.vendor, Package.model, Package.component,
                  Package.version_key.desc(), Package.id)
        .limit(limit).offset(offset)).all()
    return total, rows


def package_dict(p: Package) -> dict[str, Any]:
    """Public view of a catalog entry."""
    return {
        "id": p.id, "digest": p.digest, "file_sha256": p.file_sha256, "size": p.size,
        "vendor": p.vendor, "model": p.model, "hw_revs": p.hw_revs, "component": p.component,
        "version": p.version, "security_seq": p.security_seq, "payload_kind": p.payload_kind,
        "encrypted": p.encrypted, "metrology": p.metrology, "legal_ref": p.legal_ref,
        "signer_ids": p.signer_ids, "notes": p.notes, "uploaded_by": p.uploaded_by,
        "uploaded_at": p.uploaded_at,
    }
