"""Package build, encoding and verification: the happy paths and the specific refusals."""

from __future__ import annotations

import hashlib
import io

import pytest

from amiup.package import (
    LegalInfo,
    Manifest,
    decode_package,
    manifest_digest,
    verify_manifest,
    verify_package,
)
from amiup.package.crypto import CHUNK, StreamDecryptor
from amiup.trust import key_id
from reqmark import req
from support_package import Keys, code_of, firmware


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


@req("SEC-1")
def test_signed_package_verifies_and_names_its_signer(keys: Keys) -> None:
    img = firmware("a", 10_000)
    res = verify_package(keys.package(img), keys.anchors(), keep_image=True)
    assert res.image == img
    assert res.signer_ids == (key_id(keys.vendor.public_key()),)
    assert res.manifest.image.sha256 == hashlib.sha256(img).digest()


@req("SEC-1")
def test_package_signed_by_unknown_key_refused(keys: Keys) -> None:
    other = Keys()
    assert code_of(verify_package, other.package(b"x" * 100), keys.anchors()) == "unknown-key"


@req("SEC-1", "SEC-9")
def test_package_signed_by_revoked_vendor_key_refused(keys: Keys) -> None:
    from amiup.trust import TrustAnchors

    anchors = TrustAnchors.create(vendor=[keys.vendor.public_key()],
                                  revoked=[key_id(keys.vendor.public_key())])
    assert code_of(verify_package, keys.package(b"x" * 100), anchors) == "revoked-key"


@req("SEC-1")
def test_several_signers_one_trusted_is_enough(keys: Keys) -> None:
    other = Keys()
    pkg = keys.package(b"y" * 500, sign_keys=[other.vendor, keys.vendor])
    assert verify_package(pkg, keys.anchors()).signer_ids == (key_id(keys.vendor.public_key()),)


@req("SEC-2")
def test_signature_swapped_from_another_package_refused(keys: Keys) -> None:
    a = decode_package(keys.package(b"a" * 100, version="1.0.0"))
    b = decode_package(keys.package(b"a" * 100, version="9.0.0"))
    import cbor2

    from amiup.trust.canonical import dumps, loads

    doc = loads(a.signed_header)
    docb = loads(b.signed_header)
    forged = dumps(cbor2.CBORTag(98, [doc.value[0], {}, docb.value[2], doc.value[3]]))
    assert code_of(verify_manifest, forged, keys.anchors()) == "bad-signature"


@req("SEC-2")
def test_truncated_package_gives_malformed(keys: Keys) -> None:
    pkg = keys.package(firmware("t", 3000))
    for cut in (0, 3, 20, len(pkg) // 2, len(pkg) - 1):
        assert code_of(verify_package, pkg[:cut], keys.anchors()) == "malformed-package"


@req("SEC-2")
def test_trailing_bytes_refused(keys: Keys) -> None:
    pkg = keys.package(b"z" * 64)
    assert code_of(verify_package, pkg + b"\0", keys.anchors()) == "malformed-package"


def test_garbage_and_empty_input_refused(keys: Keys) -> None:
    assert code_of(verify_package, b"", keys.anchors()) == "malformed-package"
    assert code_of(verify_package, b"\x00" * 64, keys.anchors()) == "malformed-package"
    assert code_of(decode_package, b"hello world") == "malformed-package"


def test_oversized_payload_claim_refused_before_reading(keys: Keys) -> None:
    from amiup.package import envelope

    pkg = keys.package(b"q" * 10)
    head = envelope.read_head(io.BytesIO(pkg))
    huge = envelope.MAGIC + envelope.bstr_head(len(head.signed_header)) + head.signed_header
    huge += envelope.bstr_head(1 << 40)  # claims a 1 TiB payload, sends nothing
    assert code_of(verify_package, huge, keys.anchors()) == "too-large"
    big_header = envelope.MAGIC + envelope.bstr_head(1 << 30)
    assert code_of(verify_package, big_header, keys.anchors()) == "too-large"


def test_manifest_is_small_and_deterministic(keys: Keys) -> None:
    img = firmware("d", 5000)
    p1 = decode_package(keys.package(img, requires=["metrology>=1.0.0"], notes="fix"))
    p2 = decode_package(keys.package(img, requires=["metrology>=1.0.0"], notes="fix"))
    assert p1.manifest_bytes == p2.manifest_bytes  # deterministic CBOR
    assert len(p1.manifest_bytes) < 2048
    again = Manifest.from_bytes(p1.manifest_bytes)
    assert again.to_bytes() == p1.manifest_bytes
    assert manifest_digest(p1.manifest_bytes) == hashlib.sha256(p1.manifest_bytes).digest()


def test_non_canonical_manifest_refused() -> None:
    import cbor2

    non_canonical = cbor2.dumps({"z": 1, "a": 2})  # keys not sorted
    assert code_of(Manifest.from_bytes, non_canonical) == "malformed-package"


@req("SEC-7")
def test_encrypted_package_decrypts_for_recipient_only(keys: Keys) -> None:
    img = firmware("enc", 3 * CHUNK + 17)
    pkg = keys.package(img, encrypt_for=[keys.meter.public_key()])
    p = decode_package(pkg)
    assert img[:64] not in p.payload  # ciphertext at rest and in transit
    res = verify_package(pkg, keys.anchors(), decrypt_key=keys.meter, keep_image=True)
    assert res.image == img and res.image_checked
    assert not verify_package(pkg, keys.anchors()).image_checked  # no key: payload digest only
    wrong = Keys().meter
    assert code_of(verify_package, pkg, keys.anchors(), decrypt_key=wrong) == "decrypt-failed"


@req("SEC-7")
def test_stream_decryption_any_slicing_and_chunk_reorder_refused(keys: Keys) -> None:
    img = firmware("s", 2 * CHUNK + 5)
    p = decode_package(keys.package(img, encrypt_for=[keys.meter.public_key()]))
    enc = p.manifest.encryption
    assert enc is not None
    for step in (1, 7, 4096, 10_000):
        d = StreamDecryptor(enc, keys.meter)
        out = b"".join(d.feed(p.payload[i:i + step]) for i in range(0, len(p.payload), step))
        assert out + d.finish() == img
    sealed = CHUNK + 16
    swapped = p.payload[sealed:2 * sealed] + p.payload[:sealed] + p.payload[2 * sealed:]
    d = StreamDecryptor(enc, keys.meter)
    assert code_of(lambda: d.feed(swapped) + d.finish()) == "decrypt-failed"
    d = StreamDecryptor(enc, keys.meter)
    assert code_of(lambda: d.feed(p.payload[:sealed]) + d.finish()) == "decrypt-failed"


@req("MET-4")
def test_metrology_package_needs_legal_identity(keys: Keys) -> None:
    assert code_of(keys.package, b"m" * 10, component="metrology") == "legal-fields-missing"
    pkg = keys.package(b"m" * 10, component="metrology", legal=LegalInfo("PTB-22.61-123", "1.1"))
    legal = verify_package(pkg, keys.anchors()).manifest.legal
    assert legal == LegalInfo("PTB-22.61-123", "1.1")


@req("HAN-3")
def test_comm_package_declares_the_protocol_it_brings(keys: Keys) -> None:
    pkg = keys.package(b"h" * 10, component="han_comm", protocol="zigbee-se-1.4")
    assert verify_package(pkg, keys.anchors()).manifest.protocol == "zigbee-se-1.4"
    assert code_of(keys.package, b"h", component="ami_app", protocol="x") == "invalid-argument"


def test_build_refuses_bad_arguments(keys: Keys) -> None:
    assert code_of(keys.package, b"x", component="toaster") == "invalid-argument"
    assert code_of(keys.package, b"x", version="one") == "invalid-argument"
    assert code_of(keys.package, b"x", hw_revs=[]) == "invalid-argument"
    assert code_of(keys.package, b"x", requires=["nonsense"]) == "invalid-argument"
    assert code_of(keys.package, b"x", security_seq=-1) == "invalid-argument"


@req("SEC-2")
def test_large_in_memory_package_hashed_ahead_still_catches_tampering(keys: Keys) -> None:
    # >= 1 MiB takes the path that hashes the payload on another thread during the signature check
    img = firmware("big", 2 * 1024 * 1024 + 3)
    pkg = keys.package(img)
    assert verify_package(pkg, keys.anchors(), keep_image=True).image == img
    bad = bytearray(pkg)
    bad[-1_000_000] ^= 0x20
    assert code_of(verify_package, bytes(bad), keys.anchors()) == "digest-mismatch"
    assert code_of(verify_package, pkg[:-10], keys.anchors()) == "malformed-package"
    assert code_of(verify_package, pkg + b"x", keys.anchors()) == "malformed-package"
    assert code_of(verify_package, pkg, Keys().anchors()) == "unknown-key"
