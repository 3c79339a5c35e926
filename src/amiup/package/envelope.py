"""The ``.amiup`` file: a deterministic CBOR array ``["amiup", 1, signed_header, payload]``.

``signed_header`` is the COSE_Sign (manifest + signatures) as a byte string and ``payload`` the
bytes sent. Any CBOR decoder reads the file whole; we read only the two byte-string heads by
hand so a verifier can check the signature first and then *stream* the payload through its
digest in bounded memory (cbor2 would load the payload whole). Each head must be in shortest
form, so the file stays deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

from amiup.errors import error
from amiup.package.limits import DEFAULT_LIMITS, Limits

MAGIC = b"\x84\x65amiup\x01"  # array(4), text(5) "amiup", uint 1
_BSTR = 2


def _head(major: int, n: int) -> bytes:
    ib = major << 5
    if n < 24:
        return bytes([ib | n])
    for ai, width in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * width):
            return bytes([ib | ai]) + n.to_bytes(width, "big")
    raise error("too-large", "length does not fit CBOR")


def bstr_head(n: int) -> bytes:
    """CBOR head of a byte string of ``n`` bytes, shortest form."""
    return _head(_BSTR, n)


def _read_exact(fp: BinaryIO, n: int, what: str) -> bytes:
    data = fp.read(n)
    if len(data) != n:
        raise error("malformed-package", f"truncated: {what} ends after {len(data)} of {n} bytes")
    return data


def read_bstr_head(fp: BinaryIO, what: str) -> int:
    """Read a definite-length byte-string head in shortest form; return its length."""
    ib = bytes(_read_exact(fp, 1, what))[0]
    if ib >> 5 != _BSTR:
        raise error("malformed-package", f"{what} is not a byte string")
    ai = ib & 0x1F
    if ai < 24:
        return ai
    widths = {24: 1, 25: 2, 26: 4, 27: 8}
    if ai not in widths:
        raise error("malformed-package", f"{what} has an indefinite or reserved length")
    n = int.from_bytes(bytes(_read_exact(fp, widths[ai], what)), "big")
    if bstr_head(n) != bytes([ib]) + n.to_bytes(widths[ai], "big"):
        raise error("malformed-package", f"{what} length is not in shortest form")
    return n


@dataclass(frozen=True, slots=True)
class EnvelopeHead:
    """Where things are: the signed header bytes and the payload's length (next in the file)."""

    signed_header: bytes
    payload_size: int


def read_head(fp: BinaryIO, limits: Limits = DEFAULT_LIMITS) -> EnvelopeHead:
    """Read up to the start of the payload, checking every cap before reading further."""
    magic = bytes(fp.read(len(MAGIC)))
    if magic != MAGIC:
        raise error("malformed-package", "not an amiup package (bad magic or format version)")
    n = read_bstr_head(fp, "signed header")
    if n > limits.max_header:
        raise error("too-large", f"signed header of {n} bytes > {limits.max_header}")
    header = bytes(_read_exact(fp, n, "signed header"))
    size = read_bstr_head(fp, "payload")
    if size > limits.max_payload:
        raise error("too-large", f"payload of {size} bytes > {limits.max_payload}")
    return EnvelopeHead(header, size)


def encode(signed_header: bytes, payload: bytes) -> bytes:
    """The whole file's bytes."""
    return b"".join((MAGIC, bstr_head(len(signed_header)), signed_header,
                     bstr_head(len(payload)), payload))
