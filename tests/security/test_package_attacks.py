"""Attacks on packages, orders and trust roots, each through the real verification path."""

from __future__ import annotations

import contextlib

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amiup.errors import AmiupError, Rejected
from amiup.package import (
    MANIFEST_CTY,
    Identity,
    UpgradeOrder,
    check_compatible,
    check_rollback,
    decode_package,
    manifest_digest,
    sign_order,
    verify_order,
    verify_package,
)
from amiup.trust import TrustAnchors, cose, generate_key, key_id, sign_revocations, sign_root
from amiup.trust.anchors import RootMetadata
from amiup.trust.keys import public_bytes
from reqmark import req
from support_package import Keys, code_of, firmware

KEYS = Keys()
SMALL = KEYS.package(firmware("small", 96), created=1)


@req("SEC-2")
def test_every_byte_of_a_small_package_flipped_is_refused() -> None:
    anchors = KEYS.anchors()
    verify_package(SMALL, anchors)
    codes: dict[str, int] = {}
    for i in range(len(SMALL)):
        bad = bytearray(SMALL)
        bad[i] ^= 0xFF
        with pytest.raises(Rejected) as ex:
            verify_package(bytes(bad), anchors)
        codes[ex.value.code] = codes.get(ex.value.code, 0) + 1
    print(f"{len(SMALL)} byte flips refused: {codes}")
    assert "bad-signature" in codes and "digest-mismatch" in codes


@req("SEC-2")
def test_every_single_bit_flip_fails_verify() -> None:
    """All 8 x 510 one-bit changes, not a sample: a sample of 300 once missed the three
    bits that turned a signature's unprotected header (outside every signature) from the
    empty map into another CBOR item, which the decoder then ignored."""
    anchors = KEYS.anchors()
    accepted = []
    for bit in range(len(SMALL) * 8):
        bad = bytearray(SMALL)
        bad[bit // 8] ^= 1 << (bit % 8)
        try:
            verify_package(bytes(bad), anchors)
        except Rejected:
            continue
        accepted.append(bit)
    assert accepted == []


@req("SEC-2")
def test_anything_in_an_unprotected_cose_header_is_refused() -> None:
    doc = cbor2.loads(SMALL[SMALL.index(b"\xd8\x62"):])  # the signed header: COSE_Sign, tag 98
    for where in ("body", "signature"):
        v = [*doc.value]
        if where == "body":
            v[1] = {4: b"kid-hint"}
        else:
            v[3] = [[v[3][0][0], {4: b"kid-hint"}, v[3][0][2]]]
        with pytest.raises(Rejected, match="unprotected COSE header"):
            cose.decode_multi(cbor2.dumps(cbor2.CBORTag(98, v)), content_type=MANIFEST_CTY)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_random_bytes_raise_only_amiup_errors(data: bytes) -> None:
    for fn in (lambda: decode_package(data), lambda: verify_package(data, KEYS.anchors())):
        with contextlib.suppress(AmiupError):
            fn()


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_valid_envelopes_raise_only_amiup_errors(data: st.DataObject) -> None:
    buf = bytearray(SMALL)
    for _ in range(data.draw(st.integers(1, 6))):
        op = data.draw(st.sampled_from(["set", "insert", "delete"]))
        pos = data.draw(st.integers(0, len(buf)))
        if op == "set" and pos < len(buf):
            buf[pos] = data.draw(st.integers(0, 255))
        elif op == "insert":
            buf[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
        elif pos < len(buf):
            del buf[pos:pos + data.draw(st.integers(1, 8))]
    with contextlib.suppress(AmiupError):
        verify_package(bytes(buf), KEYS.anchors())


@req("SEC-1")
def test_package_signed_with_wrong_vendor_key_refused() -> None:
    mallory = Keys()
    assert code_of(verify_package, mallory.package(b"evil"), KEYS.anchors()) == "unknown-key"


# -- SM-4: is the package meant for this meter?

IDENT = Identity("acme", "AX-1", "B", {"metrology": "1.0.0", "ami_app": "2.1.0",
                                       "ami_comm": "1.0.0", "han_app": "1.0.0", "han_comm": "1.0.0"})


def _manifest(**kw: object):  # type: ignore[no-untyped-def]
    return decode_package(KEYS.package(b"c" * 10, **kw)).manifest


@req("SM-4")
@pytest.mark.parametrize(("kw", "code"), [
    ({"vendor": "other"}, "wrong-vendor"),
    ({"model": "ZX-9"}, "wrong-model"),
    ({"hw_revs": ["A", "C"]}, "wrong-hw-rev"),
    ({"requires": ["ami_comm>=2.0.0"]}, "dependency-unmet"),
    ({"requires": ["metrology==1.0.1"]}, "dependency-unmet"),
])
def test_incompatible_package_refused(kw: dict[str, object], code: str) -> None:
    assert code_of(check_compatible, _manifest(**kw), IDENT) == code


@req("SM-4")
def test_compatible_package_accepted_and_component_checked() -> None:
    m = _manifest(hw_revs=["A", "B"], requires=["ami_app>=2.0.0", "metrology<2.0.0"])
    check_compatible(m, IDENT)
    check_compatible(m, IDENT, component="ami_app")
    assert code_of(check_compatible, m, IDENT, component="han_app") == "wrong-component"


# -- SEC-6: anti-rollback helper the meter uses

@req("SEC-6")
def test_rollback_of_security_seq_refused_unless_downgrade_ordered() -> None:
    m = _manifest(security_seq=3)
    check_rollback(3, m.security_seq)
    check_rollback(2, m.security_seq)
    assert code_of(check_rollback, 4, m.security_seq) == "rollback-refused"
    check_rollback(4, m.security_seq, allow_downgrade=True)


# -- SEC-3 (crypto side): upgrade orders

DIGEST = manifest_digest(decode_package(SMALL).manifest_bytes)


def _order(**kw: object) -> UpgradeOrder:
    args: dict[str, object] = dict(package_digest=DIGEST, targets=("M1",), not_before=100,
                                   not_after=200, counter=5)
    args.update(kw)
    return UpgradeOrder(**args)  # type: ignore[arg-type]


@req("SEC-3")
def test_order_checks_signer_window_target_counter() -> None:
    a = KEYS.anchors()
    good = sign_order(_order(), KEYS.utility)
    o = verify_order(good, a, meter_id="M1", now=150, last_counter=4, package_digest=DIGEST)
    assert o.counter == 5
    assert code_of(verify_order, good, a, meter_id="M1", now=99, last_counter=4) == "order-not-yet-valid"
    assert code_of(verify_order, good, a, meter_id="M1", now=201, last_counter=4) == "order-expired"
    assert code_of(verify_order, good, a, meter_id="M2", now=150, last_counter=4) == "order-wrong-target"
    assert code_of(verify_order, good, a, meter_id="M1", now=150, last_counter=5) == "order-replayed"
    assert code_of(verify_order, good, a, meter_id="M1", now=150, last_counter=0,
                   package_digest=b"\0" * 32) == "order-mismatch"
    grp = sign_order(_order(targets=(), groups=("north",)), KEYS.utility)
    verify_order(grp, a, meter_id="M9", meter_groups=("north",), now=150, last_counter=0)


@req("SEC-3")
def test_order_signed_by_vendor_key_or_tampered_refused() -> None:
    a = KEYS.anchors()
    assert code_of(verify_order, sign_order(_order(), KEYS.vendor), a, meter_id="M1", now=150,
                   last_counter=0) == "unknown-key"
    good = bytearray(sign_order(_order(), KEYS.utility))
    idx = bytes(good).find(b"M1")
    good[idx + 1] = ord("2")  # retarget to M2 without re-signing
    assert code_of(verify_order, bytes(good), a, meter_id="M2", now=150, last_counter=0) == "bad-signature"


# -- SEC-9: root rotation and revocation

def _root(version: int, roots: list, threshold: int, vendors: list | None = None) -> RootMetadata:  # type: ignore[type-arg]
    return RootMetadata(version, threshold, tuple(public_bytes(k.public_key()) for k in roots),
                        tuple(public_bytes(k.public_key()) for k in vendors or [KEYS.vendor]), ())


@req("SEC-9")
def test_root_rotation_needs_threshold_of_old_and_new_roots() -> None:
    anchors = KEYS.anchors(threshold=2)  # 3 root keys, threshold 2
    new_roots = [generate_key() for _ in range(3)]
    new_vendor = generate_key()
    meta = _root(2, new_roots, 2, [new_vendor])
    # only one old signature: refused
    bad = sign_root(meta, [KEYS.roots[0], *new_roots[:2]])
    assert code_of(anchors.apply_root, bad) == "threshold-not-met"
    # old threshold but only one new: refused
    bad = sign_root(meta, [*KEYS.roots[:2], new_roots[0]])
    assert code_of(anchors.apply_root, bad) == "threshold-not-met"
    # an attacker's self-signed root: refused
    assert code_of(anchors.apply_root, sign_root(meta, new_roots)) == "threshold-not-met"
    good = sign_root(meta, [*KEYS.roots[:2], *new_roots[:2]])
    rotated = anchors.apply_root(good)
    assert rotated.root.version == 2
    assert key_id(new_vendor.public_key()) in rotated.keys("vendor")
    assert key_id(KEYS.vendor.public_key()) not in rotated.keys("vendor")
    # replaying the same root or skipping a version is refused
    assert code_of(rotated.apply_root, good) == "rollback-refused"
    skip = sign_root(_root(4, new_roots, 2), new_roots)
    assert code_of(rotated.apply_root, skip) == "invalid-state"
    # packages now need the new vendor key (no meter replaced)
    assert code_of(verify_package, SMALL, rotated) == "unknown-key"
    verify_package(KEYS.package(b"n", sign_keys=[new_vendor]), rotated)


@req("SEC-9")
def test_compromised_vendor_key_revoked_by_root_threshold() -> None:
    anchors = KEYS.anchors(threshold=2)
    kid = key_id(KEYS.vendor.public_key())
    one_sig = sign_revocations(1, [kid], [KEYS.roots[0]])
    assert code_of(anchors.apply_revocations, one_sig) == "threshold-not-met"
    forged = sign_revocations(1, [kid], [generate_key(), generate_key()])
    assert code_of(anchors.apply_revocations, forged) == "threshold-not-met"
    revoked = anchors.apply_revocations(sign_revocations(1, [kid], KEYS.roots[:2]))
    assert code_of(verify_package, SMALL, revoked) == "revoked-key"
    # an older list cannot un-revoke
    older = sign_revocations(1, [], KEYS.roots[:2])
    assert code_of(revoked.apply_revocations, older) == "rollback-refused"
    # anchors survive a round trip through storage
    again = TrustAnchors.from_bytes(revoked.to_bytes())
    assert code_of(verify_package, SMALL, again) == "revoked-key"
