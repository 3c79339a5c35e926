"""Keys, trust anchors, root rotation with threshold signatures, revocation."""

from amiup.trust.anchors import (
    RootMetadata,
    TrustAnchors,
    VerificationResult,
    sign_revocations,
    sign_root,
)
from amiup.trust.keys import (
    ROLES,
    PrivateKey,
    PublicKey,
    generate_key,
    key_id,
    load_private_key,
    load_public_key,
    public_bytes,
    public_from_bytes,
    save_private_key,
    save_public_key,
    sign,
    verify_signature,
)

__all__ = [
    "ROLES", "PrivateKey", "PublicKey", "RootMetadata", "TrustAnchors", "VerificationResult",
    "generate_key", "key_id", "load_private_key", "load_public_key", "public_bytes",
    "public_from_bytes", "save_private_key", "save_public_key", "sign", "sign_revocations",
    "sign_root", "verify_signature",
]
