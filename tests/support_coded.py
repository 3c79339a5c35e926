"""Shared rig for the coded-repair tests: one real meter, one offered transfer, an encoder."""

from __future__ import annotations

from amiup.network.endpoint import MeterEndpoint
from amiup.wire import (
    Accept,
    Block,
    Coded,
    Message,
    Missing,
    Offer,
    Query,
    Verify,
    decode,
    decode_bitmap,
    encode,
)
from amiup.wire.fec import Encoder
from support_network import COMPONENT, T0, make_delivery, make_kit, make_meters

IMAGE = 10_000  # 40 blocks of 256 bytes; the last holds 16 bytes (exercises the padding)
BS = 256


class Rig:
    """One meter, one offered transfer, and the head-end's encoder for it."""

    def __init__(self, image_size: int = IMAGE, max_pending: int = 64) -> None:
        kit = make_kit(image_size)
        [ep] = make_meters(kit, 1)
        self.ep = MeterEndpoint(ep.meter, max_pending=max_pending)
        self.delivery, self.image = make_delivery(kit, [ep.meter_id], block_size=BS)
        self.now = float(T0)
        [acc] = self.send(Offer(self.delivery.order, self.delivery.header, BS), multicast=False)
        assert isinstance(acc, Accept)
        self.tid, self.n = acc.transfer, acc.block_count
        payload = self.delivery.payload
        self.blocks = [payload[i * BS:(i + 1) * BS] for i in range(self.n)]
        self.encoder = Encoder(self.tid, self.blocks, BS)

    def send(self, msg: Message, *, multicast: bool = True) -> list[Message]:
        """Through the wire codec both ways, like the simulator and CoAP do."""
        self.now += 0.5
        return [decode(encode(r)) for r in self.ep.handle(decode(encode(msg)), self.now,
                                                          multicast=multicast)]

    def blocks_except(self, dropped: set[int]) -> None:
        for i in range(self.n):
            if i not in dropped:
                assert self.send(Block(self.tid, i, self.blocks[i])) == []

    def symbol(self, seq: int) -> Coded:
        return Coded(self.tid, seq, self.encoder.symbol(seq))

    def query(self) -> Missing:
        [ans] = self.send(Query(self.tid, 7), multicast=False)
        assert isinstance(ans, Missing) and ans.seq == 7
        return ans

    def missing(self) -> list[int]:
        return decode_bitmap(self.ep.meter.missing(self.tid), self.n)

    def state(self) -> str:
        return self.ep.meter.status(b"", self.now).components[COMPONENT].state

    def feed_until_complete(self, first_seq: int, limit: int) -> int:
        """Multicast symbols from ``first_seq`` until nothing is missing; how many were sent."""
        sent = 0
        while self.missing():
            assert sent < limit, f"{sent} symbols did not finish {len(self.missing())} blocks"
            assert self.send(self.symbol(first_seq + sent)) == []  # a multicast: no answer
            sent += 1
        return sent

    def verify(self) -> Message:
        [ans] = self.send(Verify(self.tid, COMPONENT), multicast=False)
        return ans


