"""Delta images with detools: bsdiff, sequential patch, heatshrink compression.

Why these choices: a *sequential* patch is applied front to back, reading the old image by
seeks and writing the new one as a stream, so the meter needs neither image in RAM; heatshrink
is the compressor detools offers for embedded targets (a 2^8-byte window here), so the
decompressor's state is a few hundred bytes. Creating a delta is a build-machine job and may
use memory freely.
"""

from __future__ import annotations

import io
from typing import BinaryIO

import detools

from amiup.errors import error

COMPRESSION = "heatshrink"
PATCH_TYPE = "sequential"


def create(old: bytes, new: bytes) -> bytes:
    """A patch turning ``old`` into ``new``."""
    out = io.BytesIO()
    detools.create_patch(io.BytesIO(old), io.BytesIO(new), out, compression=COMPRESSION,
                         patch_type=PATCH_TYPE, use_mmap=False)
    return out.getvalue()


def apply_stream(old: BinaryIO, patch: BinaryIO, new: BinaryIO) -> int:
    """Apply ``patch`` reading ``old`` and writing ``new`` as streams; returns bytes written.

    A corrupt patch gives ``delta-failed`` (its digest is checked before this is called, so
    that means a signed-but-wrong delta or a base mismatch that slipped through).
    """
    try:
        return int(detools.apply_patch(old, patch, new))
    except Exception as ex:  # detools raises its own Error and also ValueError/IndexError
        raise error("delta-failed", f"{type(ex).__name__}: {ex}") from None


def apply(old: bytes, patch: bytes) -> bytes:
    """Whole-buffer convenience over ``apply_stream``."""
    out = io.BytesIO()
    apply_stream(io.BytesIO(old), io.BytesIO(patch), out)
    return out.getvalue()
