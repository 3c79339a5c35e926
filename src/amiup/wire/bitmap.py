"""Missing-block bitmaps: bit i (LSB first in byte i // 8) set means block i is missing."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from amiup.errors import error


def bitmap_len(block_count: int) -> int:
    """Bytes needed for ``block_count`` bits."""
    return (block_count + 7) // 8


def encode_bitmap(missing: Iterable[int], block_count: int) -> bytes:
    """Bitmap of ``block_count`` bits with the ``missing`` indices set."""
    out = bytearray(bitmap_len(block_count))
    for i in missing:
        if not 0 <= i < block_count:
            raise error("invalid-argument", f"block {i} outside 0..{block_count - 1}")
        out[i >> 3] |= 1 << (i & 7)
    return bytes(out)


def decode_bitmap(bitmap: bytes, block_count: int) -> list[int]:
    """Sorted missing indices; padding bits past ``block_count`` must be clear."""
    return [int(i) for i in np.flatnonzero(bitmap_to_array(bitmap, block_count))]


def bitmap_to_array(bitmap: bytes, block_count: int) -> npt.NDArray[np.bool_]:
    """Bool array (True = missing) from a bitmap; refuses a wrong length or stray bits."""
    if len(bitmap) != bitmap_len(block_count):
        raise error("malformed-message", f"bitmap has {len(bitmap)} bytes for {block_count} blocks")
    bits = np.unpackbits(np.frombuffer(bitmap, dtype=np.uint8), bitorder="little")
    if bits[block_count:].any():
        raise error("malformed-message", "bitmap sets bits past the last block")
    return bits[:block_count].astype(bool)


def array_to_bitmap(missing: npt.NDArray[np.bool_]) -> bytes:
    """Bitmap bytes from a bool array (True = missing)."""
    return np.packbits(missing.astype(np.uint8), bitorder="little").tobytes()
