"""The catalog refuses unsigned, tampered and unknown-vendor packages (UMS-2), on both stores."""

from __future__ import annotations

import cbor2
import pytest
from sqlalchemy import func, select

from amiup.errors import AmiupError
from amiup.package import LegalInfo, build_package, decode_package, envelope
from amiup.trust import generate_key
from amiup.trust.keys import PrivateKey
from amiup.ums import audit, catalog
from amiup.ums.models import AuditEntry, Package
from amiup.ums.store import Store
from reqmark import req
from support_ums import NOW, store_fixture  # noqa: F401


def _pkg(key: PrivateKey, *, vendor: str = "acme", version: str = "2.0.0",
         component: str = "ami_comm", image: bytes = b"image" * 200) -> bytes:
    legal = LegalInfo("PTB-1", "L1") if component == "metrology" else None
    return build_package(image, component=component, version=version, security_seq=2,
                         vendor=vendor, model="M1", hw_revs=["A"], sign_keys=[key],
                         legal=legal, created=1)


@pytest.fixture
def vendor_key(store: Store) -> PrivateKey:
    key = generate_key()
    with store.session() as db:
        catalog.add_vendor_key(db, vendor="acme", public_key=key.public_key(), now=NOW,
                               actor="admin")
    return key


@req("UMS-2")
def test_import_verifies_and_stores_content_addressed(store: Store,
                                                      vendor_key: PrivateKey) -> None:
    data = _pkg(vendor_key)
    pkg = catalog.import_package(store, data, now=NOW, actor="up")
    again = catalog.import_package(store, data, now=NOW, actor="up")
    assert again.id == pkg.id
    path = catalog.blob_path(store.blob_dir, pkg.file_sha256)
    assert path.read_bytes() == data
    assert catalog.read_package(store, pkg) == data
    with store.session() as db:
        assert catalog.get(db, pkg.digest[:12]).id == pkg.id
        total, rows = catalog.search(db, component="ami_comm")
        assert total == 1 and rows[0].version == "2.0.0"
        assert catalog.search(db, text="acm")[0] == 1
        assert catalog.search(db, component="metrology")[0] == 0


@req("UMS-2", "MET-4")
def test_metrology_package_flagged(store: Store, vendor_key: PrivateKey) -> None:
    pkg = catalog.import_package(store, _pkg(vendor_key, component="metrology"), now=NOW,
                                 actor="up")
    assert pkg.metrology and pkg.legal_ref == "PTB-1"


def _unsigned(data: bytes) -> bytes:
    pk = decode_package(data)
    tag = cbor2.loads(pk.signed_header)
    value = list(tag.value)
    value[3] = []
    return envelope.encode(cbor2.dumps(cbor2.CBORTag(tag.tag, value)), pk.payload)


def _tampered_payload(data: bytes) -> bytes:
    bad = bytearray(data)
    bad[-3] ^= 0x01
    return bytes(bad)


def _tampered_manifest(data: bytes) -> bytes:
    pk = decode_package(data)
    bad = pk.signed_header.replace(b"2.0.0", b"9.0.0", 1)
    assert bad != pk.signed_header
    return envelope.encode(bad, pk.payload)


@req("UMS-2", "SEC-5")
@pytest.mark.parametrize(("attack", "code"), [
    ("unsigned", "malformed-package"),
    ("tampered-payload", "digest-mismatch"),
    ("tampered-manifest", "bad-signature"),
    ("unknown-vendor", "unknown-key"),
    ("unknown-key", "unknown-key"),
    ("other-vendors-key", "unknown-key"),
    ("revoked-key", "revoked-key"),
    ("not-a-package", "malformed-package"),
])
def test_bad_packages_refused_with_code_and_audited(store: Store, vendor_key: PrivateKey,
                                                    attack: str, code: str) -> None:
    good = _pkg(vendor_key)
    if attack == "unsigned":
        data = _unsigned(good)
    elif attack == "tampered-payload":
        data = _tampered_payload(good)
    elif attack == "tampered-manifest":
        data = _tampered_manifest(good)
    elif attack == "unknown-vendor":
        data = _pkg(generate_key(), vendor="evil")
    elif attack == "unknown-key":
        data = _pkg(generate_key())
    elif attack == "other-vendors-key":  # acme's key vouching for another vendor's package
        with store.session() as db:
            catalog.add_vendor_key(db, vendor="other", public_key=generate_key().public_key(),
                                   now=NOW, actor="admin")
        data = _pkg(vendor_key, vendor="other")
    elif attack == "revoked-key":
        with store.session() as db:
            key_ids = [k for k in db.scalars(select(catalog.VendorKey.key_id))]
            catalog.revoke_vendor_key(db, key_id_hex=key_ids[0], now=NOW, actor="admin")
        data = good
    else:
        data = b"MZ\x90\x00 not a package"
    with pytest.raises(AmiupError) as exc:
        catalog.import_package(store, data, now=NOW, actor="up")
    assert exc.value.code == code
    with store.session() as db:
        assert db.scalar(select(func.count()).select_from(Package)) == 0
        last = db.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1)).one()
        assert (last.action, last.outcome) == ("package.import", code)
        assert audit.verify(db).ok
    assert not any(store.blob_dir.rglob("*")) or all(p.is_dir() for p in store.blob_dir.rglob("*"))


@req("UMS-2")
def test_blob_changed_on_disk_detected(store: Store, vendor_key: PrivateKey) -> None:
    pkg = catalog.import_package(store, _pkg(vendor_key), now=NOW, actor="up")
    path = catalog.blob_path(store.blob_dir, pkg.file_sha256)
    path.write_bytes(path.read_bytes()[:-1] + b"!")
    with pytest.raises(AmiupError) as exc:
        catalog.read_package(store, pkg)
    assert exc.value.code == "digest-mismatch"
