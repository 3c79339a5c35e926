"""Caps on every length a package, order or message may claim, checked before reading more."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    """One place for the endless-data caps (python-tuf's ``UpdaterConfig`` habit)."""

    max_header: int = 16 * 1024          # COSE structure with manifest and signatures
    max_manifest: int = 4 * 1024         # manifest bytes (target: well under 2 KiB)
    max_payload: int = 64 * 1024 * 1024  # bytes sent (full image, delta or ciphertext)
    max_image: int = 64 * 1024 * 1024    # installed image size
    max_signatures: int = 8
    max_requires: int = 16
    max_recipients: int = 16
    max_text: int = 256                  # any identifier-like string
    max_notes: int = 1024


DEFAULT_LIMITS = Limits()
