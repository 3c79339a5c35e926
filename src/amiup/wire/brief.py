"""Compact forms for the cell read-back: 4-byte meter short ids and one-byte state codes.

A cell read-back carries a thousand answers up to six hops each, so every byte of an answer
counts about three thousand times on the cell's channel. A meter id such as
``meter-000123`` costs 13 bytes in CBOR; its short id costs 4, and a state name such as
``committed`` costs 10 where its code costs 1. Short ids are a hash, not an assignment: a
meter derives its own from its id with no state to keep, and the collector (which knows the
meters of its cell, as an RPL non-storing root knows its nodes) maps them back. Two meters of
one cell with the same short id (about one cell in eight thousand at a thousand meters) are
ambiguous: the collector drops their gathered entries, and the head-end's named poll, whose
answers come straight from the meter, settles them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from amiup.errors import error

SHORT_ID_LEN = 4

STATES: tuple[str, ...] = (
    "idle", "receiving", "received", "verifying", "verified", "scheduled", "activating",
    "trial", "committed", "reverted", "failed",
)
"""State codes on the wire: the index of the agent state (``amiup.meter.agent.STATES``)."""


def short_id(meter_id: str) -> bytes:
    """The meter's 4-byte short id: the head of SHA-256 over a label and its id."""
    return hashlib.sha256(b"amiup-short-id-v1\x00" + meter_id.encode()).digest()[:SHORT_ID_LEN]


def pack(ids: Iterable[bytes]) -> bytes:
    """Short ids as one byte string (the wire form of a list of meters)."""
    out = b"".join(ids)
    if len(out) % SHORT_ID_LEN:
        raise error("invalid-argument", f"short ids are {SHORT_ID_LEN} bytes each")
    return out


def unpack(packed: bytes) -> list[bytes]:
    """The short ids of a packed list, in order."""
    if len(packed) % SHORT_ID_LEN:
        raise error("malformed-message", f"a packed id list is a multiple of {SHORT_ID_LEN} bytes")
    return [packed[i:i + SHORT_ID_LEN] for i in range(0, len(packed), SHORT_ID_LEN)]


def names(meter_ids: Iterable[str]) -> bytes:
    """The packed short ids of ``meter_ids`` (a named poll's list)."""
    return pack(short_id(m) for m in meter_ids)


def roster(meter_ids: Iterable[str]) -> dict[bytes, str | None]:
    """Short id -> meter id for one cell; None where two meters share a short id."""
    out: dict[bytes, str | None] = {}
    for m in meter_ids:
        s = short_id(m)
        out[s] = m if s not in out or out[s] == m else None
    return out


def state_code(state: str) -> int:
    """The wire code of an agent state name (``invalid-argument`` if unknown)."""
    try:
        return STATES.index(state)
    except ValueError:
        raise error("invalid-argument", f"unknown state {state!r}") from None


def state_name(code: int) -> str:
    """The state name of a wire code; codes from a newer peer read as ``unknown-N``."""
    return STATES[code] if 0 <= code < len(STATES) else f"unknown-{code}"
