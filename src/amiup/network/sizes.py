"""Airtime of wire messages: encoded size plus per-frame link overhead, for the models."""

from __future__ import annotations

from dataclasses import dataclass

from amiup.network.profiles import Profile
from amiup.wire import (
    Accept,
    Block,
    Coded,
    ComponentStatus,
    Gathered,
    GatherGroup,
    GetStatus,
    Message,
    Missing,
    Offer,
    Query,
    Running,
    Status,
    Verified,
    Verify,
    bitmap_len,
    encode,
)
from amiup.wire.brief import SHORT_ID_LEN, state_code

# Typical sizes of the signed parts of an offer (measured on packages from amiup.package:
# manifest ~600 B, one ES256 signature set ~150 B, a signed order ~300 B).
MANIFEST_BYTES = 600
SIGNATURES_BYTES = 150
ORDER_BYTES = 300
TRANSFER = 2**31 + 12345  # a 4-byte transfer id, as meters derive them
COMMITTED = state_code("committed")


def frame_bytes(message_len: int, profile: Profile) -> int:
    """Bytes on air for one message: the message plus link headers per fragment."""
    mtu = profile.block_size + 32
    frames = max(1, -(-message_len // mtu))
    return message_len + frames * profile.frame_overhead


@dataclass(frozen=True, slots=True)
class MessageSizes:
    """On-air bytes of each message of a transfer of ``blocks`` blocks of ``block_size``."""

    offer: int
    accept: int
    block: int
    query: int
    missing: int
    verify: int
    verified: int
    get_status: int
    status: int
    coded: int
    get_brief: int
    running: int
    gather_frame: int  # a gathered frame holding one answer, on air
    gather_per_meter: int  # each further answer in the same frame (a 4-byte short id)

    @classmethod
    def for_transfer(cls, profile: Profile, blocks: int, *, order_bytes: int = ORDER_BYTES,
                     header_bytes: int = MANIFEST_BYTES + SIGNATURES_BYTES) -> MessageSizes:
        """Sizes for ``profile`` (its block size) and a payload of ``blocks`` blocks."""
        bs = profile.block_size
        bitmap = b"\x00" * bitmap_len(blocks)

        def f(msg: Message) -> int:
            return frame_bytes(len(encode(msg)), profile)

        comp = ComponentStatus("ami_comm", "1.2.3", "1.2.4", "committed", TRANSFER, blocks, blocks, 7)
        return cls(
            offer=f(Offer(b"o" * order_bytes, b"h" * header_bytes, bs)),
            accept=f(Accept(TRANSFER, "ami_comm", bs, blocks, bitmap)),
            block=f(Block(TRANSFER, max(0, blocks - 1), b"\x00" * bs)),
            query=f(Query(TRANSFER, 1000)),
            missing=f(Missing(TRANSFER, blocks, bitmap, 1000)),
            verify=f(Verify(TRANSFER, "ami_comm")),
            verified=f(Verified(TRANSFER, b"\x00" * 32)),
            get_status=f(GetStatus(b"\x00" * 16, "ami_comm")),
            status=f(Status("meter-000001", b"\x00" * 16, 1_800_000_000, (comp,), 3)),
            coded=f(Coded(TRANSFER, 1000, b"\x00" * bs)),
            get_brief=f(GetStatus(b"\x00" * 4, "ami_comm", brief=True)),
            running=f(Running(b"\x00" * 4, "1.2.4", COMMITTED)),
            gather_frame=f(_gathered(1)),
            gather_per_meter=len(encode(_gathered(2))) - len(encode(_gathered(1))),
        )


def _gathered(n: int) -> Gathered:
    """A gathered read-back frame with ``n`` meters in one group."""
    return Gathered(b"\x00" * 4, (GatherGroup("1.2.4", COMMITTED, bytes(SHORT_ID_LEN * n)),))
