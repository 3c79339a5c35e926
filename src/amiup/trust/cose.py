"""COSE_Sign (several signers) and COSE_Sign1 with ES256, built on cbor2 + cryptography.

We build the ``Sig_structure`` (RFC 9052 s.4.4) ourselves rather than use pycose: pycose 1.1
signs ES256 through python-ecdsa (not constant time) and fails to decode with cbor2 6.
Only what amiup needs is supported: ES256, ``kid`` in the protected header, attached payload.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cbor2

from amiup.errors import error
from amiup.trust.canonical import dumps, loads
from amiup.trust.keys import PrivateKey, PublicKey, key_id, sign, verify_signature

TAG_SIGN = 98
TAG_SIGN1 = 18
ALG_ES256 = -7
H_ALG = 1
H_KID = 4
H_CTY = 3


@dataclass(frozen=True, slots=True)
class Signature:
    """One signer's entry: which key (by id) and the raw ES256 signature bytes."""

    kid: str
    protected: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class SignedDoc:
    """A decoded COSE_Sign: the payload bytes (untrusted until verified) and the signatures."""

    body_protected: bytes
    payload: bytes
    signatures: tuple[Signature, ...]


def _sig_structure(body_protected: bytes, sign_protected: bytes, payload: bytes) -> bytes:
    return dumps(["Signature", body_protected, sign_protected, b"", payload])


def _sig1_structure(protected: bytes, payload: bytes) -> bytes:
    return dumps(["Signature1", protected, b"", payload])


def sign_multi(payload: bytes, keys: list[PrivateKey], content_type: str) -> bytes:
    """COSE_Sign (tag 98) over ``payload`` by every key in ``keys``."""
    if not keys:
        raise error("invalid-argument", "at least one signing key is needed")
    body_protected = dumps({H_CTY: content_type})
    sigs = []
    for k in keys:
        kid = bytes.fromhex(key_id(k.public_key()))
        prot = dumps({H_ALG: ALG_ES256, H_KID: kid})
        sigs.append([prot, {}, sign(k, _sig_structure(body_protected, prot, payload))])
    return dumps(cbor2.CBORTag(TAG_SIGN, [body_protected, {}, payload, sigs]))


def _protected_kid(prot: bytes, code: str) -> str:
    hdr = loads(prot, what="protected header", code=code)
    if not isinstance(hdr, dict) or hdr.get(H_ALG) != ALG_ES256:
        raise error(code, "signature algorithm is not ES256")
    kid = hdr.get(H_KID)
    if not isinstance(kid, bytes) or len(kid) != 32:
        raise error(code, "signature has no valid key id")
    return kid.hex()


def _no_unprotected(header: object, code: str) -> None:
    """amiup signs every header it uses: an unprotected header must be the empty map.

    Anything there is outside every signature, so it is refused rather than ignored: a
    changed byte of a package or order then never verifies, whichever byte it is.
    """
    if not (isinstance(header, dict) and not header):
        raise error(code, "unprotected COSE header is not empty")


def decode_multi(data: bytes, *, content_type: str, code: str = "malformed-package",
                 max_signatures: int = 8) -> SignedDoc:
    """Parse a COSE_Sign structure (nothing verified yet)."""
    obj = loads(data, what="signed document", code=code)
    if not isinstance(obj, cbor2.CBORTag) or obj.tag != TAG_SIGN:
        raise error(code, "not a COSE_Sign structure")
    v = obj.value
    if not (isinstance(v, list) and len(v) == 4 and isinstance(v[0], bytes)
            and isinstance(v[2], bytes) and isinstance(v[3], list)):
        raise error(code, "COSE_Sign has the wrong shape")
    _no_unprotected(v[1], code)
    body_hdr = loads(v[0], what="body header", code=code)
    if not isinstance(body_hdr, dict) or body_hdr.get(H_CTY) != content_type:
        raise error(code, f"content type is not {content_type!r}")
    if not 1 <= len(v[3]) <= max_signatures:
        raise error("too-large" if v[3] else code, f"{len(v[3])} signatures (1..{max_signatures})")
    sigs = []
    for s in v[3]:
        if not (isinstance(s, list) and len(s) == 3 and isinstance(s[0], bytes)
                and isinstance(s[2], bytes)):
            raise error(code, "COSE_Signature has the wrong shape")
        _no_unprotected(s[1], code)
        sigs.append(Signature(_protected_kid(s[0], code), s[0], s[2]))
    return SignedDoc(v[0], v[2], tuple(sigs))


def check(doc: SignedDoc, sig: Signature, public_key: PublicKey) -> bool:
    """True when ``sig`` is a valid signature by ``public_key`` over ``doc``."""
    return verify_signature(public_key, sig.signature,
                            _sig_structure(doc.body_protected, sig.protected, doc.payload))


def sign_single(payload: bytes, key: PrivateKey, content_type: str) -> bytes:
    """COSE_Sign1 (tag 18): one signer, for orders, reports and credentials."""
    kid = bytes.fromhex(key_id(key.public_key()))
    prot = dumps({H_ALG: ALG_ES256, H_KID: kid, H_CTY: content_type})
    return dumps(cbor2.CBORTag(TAG_SIGN1, [prot, {}, payload, sign(key, _sig1_structure(prot, payload))]))


@dataclass(frozen=True, slots=True)
class Signed1:
    """A decoded COSE_Sign1: signer key id, payload (untrusted until checked)."""

    kid: str
    protected: bytes
    payload: bytes
    signature: bytes

    def check(self, public_key: PublicKey) -> bool:
        return verify_signature(public_key, self.signature,
                                _sig1_structure(self.protected, self.payload))


def decode_single(data: bytes, *, content_type: str, code: str) -> Signed1:
    """Parse a COSE_Sign1 and its header (nothing verified yet)."""
    obj: Any = loads(data, what="signed message", code=code)
    if not isinstance(obj, cbor2.CBORTag) or obj.tag != TAG_SIGN1:
        raise error(code, "not a COSE_Sign1 structure")
    v = obj.value
    if not (isinstance(v, list) and len(v) == 4 and isinstance(v[0], bytes)
            and isinstance(v[2], bytes) and isinstance(v[3], bytes)):
        raise error(code, "COSE_Sign1 has the wrong shape")
    _no_unprotected(v[1], code)
    hdr = loads(v[0], what="protected header", code=code)
    if not isinstance(hdr, dict) or hdr.get(H_CTY) != content_type:
        raise error(code, f"content type is not {content_type!r}")
    return Signed1(_protected_kid(v[0], code), v[0], v[2], v[3])
