"""Keys and packages for tests: every test makes its own, nothing is committed."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from amiup.errors import AmiupError
from amiup.package import build_package
from amiup.trust import PrivateKey, TrustAnchors, generate_key


def firmware(seed: str, size: int) -> bytes:
    """Deterministic firmware-like bytes: structured, not random, like real code."""
    out = bytearray()
    i = 0
    base = hashlib.sha256(seed.encode()).digest()
    while len(out) < size:
        out += hashlib.sha256(base + (i // 8).to_bytes(4, "big")).digest() * 4 + i.to_bytes(4, "big")
        i += 1
    return bytes(out[:size])


@dataclass
class Keys:
    vendor: PrivateKey = field(default_factory=generate_key)
    utility: PrivateKey = field(default_factory=generate_key)
    meter: PrivateKey = field(default_factory=generate_key)
    roots: list[PrivateKey] = field(default_factory=lambda: [generate_key() for _ in range(3)])

    def anchors(self, threshold: int = 2) -> TrustAnchors:
        return TrustAnchors.create(vendor=[self.vendor.public_key()],
                                   utility=[self.utility.public_key()],
                                   root=[k.public_key() for k in self.roots], threshold=threshold)

    def package(self, image: bytes, **kw: Any) -> bytes:
        args: dict[str, Any] = dict(component="ami_app", version="1.1.0", security_seq=2,
                                    vendor="acme", model="AX-1", hw_revs=["B"],
                                    sign_keys=[self.vendor], created=1_700_000_000)
        args.update(kw)
        return build_package(image, **args)


def code_of(fn: object, *a: object, **kw: object) -> str:
    """The stable code of the amiup error ``fn(*a, **kw)`` raises (fails if it raises none)."""
    try:
        fn(*a, **kw)  # type: ignore[operator]
    except AmiupError as ex:
        return ex.code
    raise AssertionError("no error raised")
