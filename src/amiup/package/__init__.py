"""Signed upgrade packages: manifest, CBOR/COSE encoding, build, delta, encryption, verify."""

from amiup.package.build import MANIFEST_CTY, build_package, write_atomic
from amiup.package.compat import Identity, check_compatible, check_rollback
from amiup.package.crypto import StreamDecryptor
from amiup.package.limits import DEFAULT_LIMITS, Limits
from amiup.package.manifest import (
    EncryptionInfo,
    ImageInfo,
    LegalInfo,
    Manifest,
    PayloadInfo,
    Requirement,
    manifest_digest,
)
from amiup.package.order import UpgradeOrder, sign_order, verify_order
from amiup.package.verify import (
    Package,
    SignedManifest,
    VerifiedPackage,
    decode_package,
    verify_file,
    verify_manifest,
    verify_package,
    verify_stream,
)

__all__ = [
    "DEFAULT_LIMITS", "MANIFEST_CTY", "EncryptionInfo", "Identity", "ImageInfo", "LegalInfo",
    "Limits", "Manifest", "Package", "PayloadInfo", "Requirement", "SignedManifest",
    "StreamDecryptor", "UpgradeOrder", "VerifiedPackage", "build_package", "check_compatible",
    "check_rollback", "decode_package", "manifest_digest", "sign_order", "verify_file",
    "verify_manifest", "verify_order", "verify_package", "verify_stream", "write_atomic",
]
