"""Versioned, deterministic CBOR codec for wire messages, with caps checked before decoding.

Encoding: one CBOR array ``[WIRE_VERSION, TAG, field..., check]`` with the fields in
declaration order, nested ``ComponentStatus`` as arrays, ``None`` as CBOR null, and
``check`` the CRC-32 of the encoding of the array without it. The check is transport
hygiene (a frame damaged past the link's own checksum is dropped and repaired like a lost
one), not security: images are protected by the signed manifest's digests (SEC-2) and
commands by the signed order. Only a small deterministic subset of
CBOR is accepted (unsigned ints, byte and text strings, arrays, booleans, null; shortest length
headers; no maps, tags, floats or indefinite lengths); a scan of the headers checks every
declared length against the remaining input and the limits before cbor2 allocates anything,
and a decoded message must re-encode to the very same bytes. Every failure is an amiup
``malformed-message`` or ``too-large`` error, never a crash.
"""

from __future__ import annotations

import dataclasses
import zlib
from typing import Any

import cbor2

from amiup.errors import AmiupError, error
from amiup.wire.limits import DEFAULT_LIMITS, WIRE_VERSION, WireLimits
from amiup.wire.messages import (
    MESSAGE_TYPES,
    ComponentStatus,
    Gathered,
    GatherGroup,
    GetStatus,
    Message,
    Status,
)


def _to_list(msg: Message | ComponentStatus | GatherGroup) -> list[Any]:
    out: list[Any] = []
    for f in dataclasses.fields(msg):
        value = getattr(msg, f.name)
        if isinstance(value, tuple):
            value = [_to_list(v) if isinstance(v, ComponentStatus | GatherGroup) else v for v in value]
        out.append(value)
    return out


def _body(msg: Message) -> list[Any]:
    return [WIRE_VERSION, msg.TAG, *_to_list(msg)]


def encode(msg: Message) -> bytes:
    """Deterministic CBOR bytes of ``msg``, ending with its CRC-32 check."""
    body = _body(msg)
    check = zlib.crc32(cbor2.dumps(body, canonical=True))
    return cbor2.dumps([*body, check], canonical=True)


def _head(data: bytes, pos: int) -> tuple[int, int, int]:
    """(major type, argument, next position) of the item at ``pos``; shortest form only."""
    first = data[pos]
    major, info = first >> 5, first & 31
    pos += 1
    if info < 24:
        return major, info, pos
    if info > 27:
        raise error("malformed-message", "indefinite length or reserved CBOR header")
    size = 1 << (info - 24)
    if pos + size > len(data):
        raise error("malformed-message", "truncated CBOR header")
    arg = int.from_bytes(data[pos : pos + size], "big")
    if arg < (24 if size == 1 else 1 << (4 * size)):
        raise error("malformed-message", "CBOR length not in its shortest form")
    return major, arg, pos + size


def scan(data: bytes, limits: WireLimits = DEFAULT_LIMITS) -> None:
    """Check the CBOR structure of ``data`` against the subset and the caps, without decoding."""
    if len(data) > limits.max_message:
        raise error("too-large", f"message is {len(data)} bytes, cap {limits.max_message}")
    pos, items = 0, 1
    open_arrays: list[int] = []  # items still expected in each open array
    while items:
        if pos >= len(data):
            raise error("malformed-message", "truncated message")
        major, arg, pos = _head(data, pos)
        items -= 1
        if major == 0:
            pass
        elif major in (2, 3):
            if arg > len(data) - pos:
                raise error("malformed-message", "string longer than the message")
            pos += arg
        elif major == 4:
            if arg > len(data) - pos:
                raise error("malformed-message", "array longer than the message")
            if len(open_arrays) >= limits.max_depth:
                raise error("malformed-message", "arrays nested too deep")
            open_arrays.append(items)
            items = arg
        elif major == 7 and arg in (20, 21, 22):  # false, true, null
            pass
        else:
            raise error("malformed-message", f"CBOR major type {major}/{arg} not allowed")
        while not items and open_arrays:
            items = open_arrays.pop()
    if pos != len(data):
        raise error("malformed-message", "trailing bytes after the message")


def _component(raw: object) -> ComponentStatus:
    if not isinstance(raw, list) or len(raw) != len(dataclasses.fields(ComponentStatus)):
        raise error("malformed-message", "component status has the wrong shape")
    return ComponentStatus(*raw)


def _group(raw: object) -> GatherGroup:
    if not isinstance(raw, list) or len(raw) != 3:
        raise error("malformed-message", "a gathered group is [running, state, ids]")
    return GatherGroup(raw[0], raw[1], raw[2])


def decode(data: bytes, limits: WireLimits = DEFAULT_LIMITS) -> Message:
    """Parse untrusted bytes into a message; raises only amiup errors."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise error("malformed-message", "message must be bytes")
    data = bytes(data)
    scan(data, limits)
    try:
        raw = cbor2.loads(data)
    except Exception as ex:  # the scan leaves little, but a decoder bug must not escape
        raise error("malformed-message", f"CBOR: {type(ex).__name__}") from None
    if not isinstance(raw, list) or len(raw) < 3:
        raise error("malformed-message", "a message is an array [version, tag, ..., check]")
    *body, check = raw
    if type(check) is not int or zlib.crc32(cbor2.dumps(body, canonical=True)) != check:
        raise error("malformed-message", "the message fails its CRC-32 check (damaged)")
    version, tag, *fields = body
    if version != WIRE_VERSION or type(version) is not int:
        raise error("malformed-message", f"unsupported wire version {version!r}")
    cls = MESSAGE_TYPES.get(tag) if type(tag) is int else None
    if cls is None:
        raise error("malformed-message", f"unknown message tag {tag!r}")
    if len(fields) != len(dataclasses.fields(cls)):
        raise error("malformed-message", f"{cls.__name__} needs {len(dataclasses.fields(cls))}")
    if cls is Status and len(fields) > 3:
        comps = fields[3]
        if not isinstance(comps, list):
            raise error("malformed-message", "components must be an array")
        fields[3] = tuple(_component(c) for c in comps)
    if cls is GetStatus and len(fields) == 6 and isinstance(fields[4], list):
        fields[4] = tuple(fields[4])
    if cls is Gathered and len(fields) == 2:
        if not isinstance(fields[1], list):
            raise error("malformed-message", "groups must be an array")
        fields[1] = tuple(_group(g) for g in fields[1])
    try:
        msg = cls(*fields)
    except AmiupError:
        raise
    except Exception as ex:  # wrong arity or types a constructor did not foresee
        raise error("malformed-message", f"{cls.__name__}: {type(ex).__name__}") from None
    if len(data) != len(encode(msg)) or encode(msg) != data:
        raise error("malformed-message", "not the deterministic encoding")
    _check_limits(msg, limits)
    return msg


def _check_limits(msg: Message, limits: WireLimits) -> None:
    """Caps that a caller may set below the defaults the constructors enforce."""
    size = getattr(msg, "data", None)
    if isinstance(size, bytes) and len(size) > limits.max_block_size:
        raise error("too-large", f"block of {len(size)} bytes, cap {limits.max_block_size}")
    count = getattr(msg, "block_count", None)
    if isinstance(count, int) and count > limits.max_blocks:
        raise error("too-large", f"{count} blocks, cap {limits.max_blocks}")
