"""Head-end <-> meter wire protocol: messages, bitmaps and their CBOR codec (sans-I/O)."""

from amiup.wire.bitmap import (
    array_to_bitmap,
    bitmap_len,
    bitmap_to_array,
    decode_bitmap,
    encode_bitmap,
)
from amiup.wire.codec import decode, encode
from amiup.wire.limits import DEFAULT_LIMITS, WIRE_VERSION, WireLimits
from amiup.wire.messages import (
    Accept,
    Activate,
    Alarm,
    Block,
    Cancel,
    ComponentStatus,
    Failed,
    GetStatus,
    Message,
    Missing,
    Offer,
    Query,
    Reject,
    Result,
    Status,
    Verified,
    Verify,
)

__all__ = [
    "DEFAULT_LIMITS",
    "WIRE_VERSION",
    "Accept",
    "Activate",
    "Alarm",
    "Block",
    "Cancel",
    "ComponentStatus",
    "Failed",
    "GetStatus",
    "Message",
    "Missing",
    "Offer",
    "Query",
    "Reject",
    "Result",
    "Status",
    "Verified",
    "Verify",
    "WireLimits",
    "array_to_bitmap",
    "bitmap_len",
    "bitmap_to_array",
    "decode",
    "decode_bitmap",
    "encode",
]
