"""Deterministic CBOR: the one canonicalizer whose bytes are signed and verified.

Signer and verifier both go through here. Decoding is strict: the input must re-encode to
the very same bytes (RFC 8949 s.4.2 core deterministic encoding), which also refuses duplicate
map keys, indefinite lengths and non-shortest integers without a hand-written parser.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cbor2

from amiup.errors import error


def dumps(obj: Any) -> bytes:
    """Encode ``obj`` deterministically (sorted map keys, shortest forms)."""
    return cbor2.dumps(obj, canonical=True)


def loads(data: bytes, *, what: str = "CBOR item", code: str = "malformed-package") -> Any:
    """Decode ``data`` and require it to be in deterministic form; errors carry ``code``."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise error(code, f"{what}: expected bytes")
    data = bytes(data)
    try:
        obj = cbor2.loads(data)
    except Exception as ex:  # cbor2 raises many types on hostile input
        raise error(code, f"{what} is not valid CBOR ({type(ex).__name__})") from None
    try:
        again = dumps(obj)
    except Exception:
        raise error(code, f"{what} holds values that cannot be re-encoded") from None
    if again != data:
        raise error(code, f"{what} is not deterministically encoded")
    return _thaw(obj)


def _thaw(obj: Any) -> Any:
    """cbor2 6 decodes items inside tags as tuples and frozendicts; give callers plain types."""
    if isinstance(obj, tuple | list):
        return [_thaw(x) for x in obj]
    if isinstance(obj, Mapping):
        return {_thaw_key(k): _thaw(v) for k, v in obj.items()}
    if isinstance(obj, cbor2.CBORTag):
        return cbor2.CBORTag(obj.tag, _thaw(obj.value))
    return obj


def _thaw_key(key: Any) -> Any:
    return key if not isinstance(key, tuple | list) else tuple(key)
