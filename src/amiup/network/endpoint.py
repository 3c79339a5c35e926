"""Adapter between wire messages and the sans-I/O meter API (amiup.meter.Meter).

Every transport (the simulator, CoAP) hands a decoded message and the time to
``MeterEndpoint.handle`` and sends back what it returns. Multicast requests are answered
NACK-style: a meter speaks only when it has something the head-end must act on (a refusal,
missing blocks, a failed check), so a cell of a thousand meters does not answer every
announce. (A damaged frame never gets here: the codec's check drops it, and the block simply
stays missing until it is repaired.)

Coded repair (``coded`` symbols, ``amiup.wire.fec``): one ``Decoder`` per transfer, in RAM
only. A power loss (a new endpoint over a rebooted meter) loses the held symbols and nothing
else: blocks reach storage only once solved, through ``Meter.block`` like any plain block,
so the persisted missing-block bitmap is always right and the head-end simply sends more.
"""

from __future__ import annotations

from amiup.errors import AmiupError, error
from amiup.meter.device import Meter, TransferShape
from amiup.meter.report import ComponentStatus as MeterComponent
from amiup.wire import (
    Accept,
    Activate,
    Alarm,
    Block,
    Cancel,
    Coded,
    ComponentStatus,
    Failed,
    GetStatus,
    Message,
    Missing,
    Offer,
    Query,
    Reject,
    Result,
    Running,
    Status,
    Verified,
    Verify,
)
from amiup.wire.bitmap import decode_bitmap
from amiup.wire.brief import short_id, state_code, unpack
from amiup.wire.fec import MAX_PENDING, Decoder


def _wire_component(name: str, c: MeterComponent, full: bool) -> ComponentStatus:
    digest = c.staged_sha256 if c.staged_sha256 is not None else c.running_sha256
    digest = digest if full else b""  # the brief form saves 34 bytes per answer
    return ComponentStatus(
        component=name,
        running=c.running_version,
        staged=c.staged_version,
        state=c.state,
        transfer=c.transfer_id,
        received=min(c.received, c.n_blocks),
        block_count=c.n_blocks,
        security_seq=c.security_seq,
        code=c.code,
        sha256=digest or b"",
    )


class MeterEndpoint:
    """One meter as the network sees it: wire messages in, wire messages out."""

    def __init__(self, meter: Meter, *, max_pending: int = MAX_PENDING) -> None:
        self.meter = meter
        self.max_pending = max_pending
        self._transfers: dict[int, tuple[str, int]] = {}  # transfer -> (component, blocks)
        self._decoders: dict[int, Decoder] = {}  # transfer -> coded-repair state (RAM only)
        self.coded_dropped = 0  # solutions thrown away as inconsistent (a bad symbol)
        self.short_id = short_id(meter.meter_id)
        self._answered = b""  # nonce of the last cell read-back answered (repeats are silent)

    @property
    def meter_id(self) -> str:
        return self.meter.meter_id

    def status(self, nonce: bytes, now: float, component: str = "", full: bool = False) -> Status:
        """The meter's status as a wire message; ``full`` attaches its signed report."""
        report = self.meter.status(nonce, now)
        comps = tuple(_wire_component(n, c, full) for n, c in report.components.items()
                      if not component or n == component)
        raw = report.to_bytes() if full else b""
        return Status(self.meter_id, bytes(nonce), int(now), comps, report.order_counter,
                      raw if len(raw) <= 4096 else b"")

    def _lookup(self, transfer: int, now: float) -> tuple[str, int] | None:
        known = self._transfers.get(transfer)
        if known is None:  # after a restart: ask the meter itself
            for c in self.status(b"", now).components:
                if c.transfer == transfer:
                    known = self._transfers[transfer] = (c.component, c.block_count)
        return known

    def handle(self, msg: Message, now: float, *, multicast: bool = False) -> list[Message]:
        """Apply one head-end message; the replies to send back (maybe none)."""
        self.meter.contact(now)
        try:
            return self._handle(msg, now, multicast)
        except AmiupError as err:
            transfer = int(getattr(msg, "transfer", 0))
            if isinstance(msg, Verify):
                return [Failed(transfer, err.code, err.detail[:200])]
            return [Reject(transfer, err.code, err.detail[:200])]

    def _handle(self, msg: Message, now: float, multicast: bool) -> list[Message]:
        m = self.meter
        if isinstance(msg, Block):
            if m.block(msg.transfer, msg.index, msg.data, now):
                dec = self._decoders.get(msg.transfer)
                if dec is not None:
                    dec.learned(msg.index)  # may leave it ready: the held symbols now suffice
                    self._try_solve(msg.transfer, now)
            return []
        if isinstance(msg, Coded):
            try:
                self._coded(msg, now)
            except AmiupError:
                if multicast:
                    return []  # never make a cell answer a broadcast; the symbol is dropped
                raise
            return []
        if isinstance(msg, GetStatus):
            if msg.meters and self.short_id not in unpack(msg.meters):
                return []  # a poll of other meters of the cell
            if msg.brief:
                if multicast and msg.nonce == self._answered:
                    return []  # a repeated copy of a cell read-back: answered already
                try:
                    comp = m.component_status(msg.component, now)
                except AmiupError:
                    raise error("invalid-argument", f"no component {msg.component!r}") from None
                if multicast:
                    self._answered = bytes(msg.nonce)
                return [Running(bytes(msg.nonce), comp.running_version, state_code(comp.state))]
            return [self.status(msg.nonce, now, msg.component, msg.full)]
        if isinstance(msg, Offer):
            acc = m.offer(msg.order, msg.header, now, block_size=msg.block_size)
            self._transfers[acc.transfer_id] = (acc.component, acc.n_blocks)
            if multicast:
                return []
            return [Accept(acc.transfer_id, acc.component, acc.block_size, acc.n_blocks, acc.missing)]
        if isinstance(msg, Query):
            known = self._lookup(msg.transfer, now)
            if known is None:
                return [Reject(msg.transfer, "not-found", "no such transfer")]
            _comp, blocks = known
            try:
                bitmap = m.missing(msg.transfer)
            except AmiupError:  # past receiving (verified, active): nothing is missing
                bitmap = bytes((blocks + 7) // 8)
            if multicast and not any(bitmap):
                return []
            return [self._missing(msg.transfer, blocks, bitmap, msg.seq)]
        if isinstance(msg, Verify):
            if multicast:  # a cell's verify: if blocks are missing, say which (see _short)
                short = self._short(msg.transfer)
                if short is not None:
                    return [short]
            m.verify(msg.component, now)
            if multicast:
                return []
            comp_status = next(c for c in self.status(b"", now, msg.component, True).components)
            return [Verified(msg.transfer, comp_status.sha256)]
        if isinstance(msg, Activate):
            state = m.activate(msg.component, msg.at, now)
            return [self._result(msg.transfer, msg.component, state, now)]
        if isinstance(msg, Cancel):
            state = m.cancel(msg.component, now)
            return [self._result(msg.transfer, msg.component, state, now)]
        return [Reject(int(getattr(msg, "transfer", 0)), "invalid-state", type(msg).__name__)]

    def _missing(self, transfer: int, blocks: int, bitmap: bytes, seq: int) -> Missing:
        """The ``missing`` answer: the bitmap and the coded symbols held towards it."""
        shape = self.meter.transfer_shape(transfer)
        dec = self._decoder(transfer, shape, create=False) if shape is not None else None
        return Missing(transfer, blocks, bitmap, seq, dec.rank if dec else 0)

    def _short(self, transfer: int) -> Missing | None:
        """``missing`` (seq 0) if ``transfer`` still lacks blocks, else None.

        A multicast verify reaching a meter that is still short is answered with what it
        lacks instead of ``failed(transfer-incomplete)``: the head-end then repairs it in
        its next poll round, with no unicast session and no second offer.
        """
        shape = self.meter.transfer_shape(transfer)
        if shape is None:
            return None  # not ours, or past receiving: verify decides
        bitmap = self.meter.missing(transfer)
        return self._missing(transfer, shape.n_blocks, bitmap, 0) if any(bitmap) else None

    # ------------------------------------------------------------------ coded repair
    def _decoder(self, transfer: int, shape: TransferShape, *, create: bool) -> Decoder | None:
        """The transfer's decoder, brought in line with the meter's missing blocks.

        Blocks can reach the meter by other paths (the local port, a plain block this
        endpoint did not see), so the decoder is checked against storage each time: blocks
        since stored are ``learned``; if the meter lacks a block the decoder counts as known,
        the RAM state is stale and is dropped. None once nothing is missing.
        """
        missing = decode_bitmap(self.meter.missing(transfer), shape.n_blocks)
        dec = self._decoders.get(transfer)
        if not missing:
            self._decoders.pop(transfer, None)
            return None
        if dec is not None:
            unknown = dec.unknown
            if dec.block_size != shape.block_size or not unknown.issuperset(missing):
                dec = None
            else:
                for i in unknown.difference(missing):
                    dec.learned(i)
        if dec is None:
            self._decoders.pop(transfer, None)
            if not create:
                return None
            for t in [t for t in self._decoders if self.meter.transfer_shape(t) is None]:
                del self._decoders[t]  # transfers since verified or cancelled
            dec = Decoder(transfer, shape.n_blocks, shape.block_size, missing, self.max_pending)
            self._decoders[transfer] = dec
        return dec

    def _coded(self, msg: Coded, now: float) -> None:
        """Take one coded symbol; solve and store the missing blocks once enough are held."""
        shape = self.meter.transfer_shape(msg.transfer)
        if shape is None:
            return  # not ours, or past receiving: ignored like a stray multicast block
        if len(msg.data) != shape.block_size:
            raise error("malformed-message",
                        f"coded symbol of {len(msg.data)} bytes, block size {shape.block_size}")
        dec = self._decoder(msg.transfer, shape, create=True)
        if dec is None:
            return  # complete: nothing to repair
        dec.add(msg.seq, msg.data)
        self._try_solve(msg.transfer, now)

    def _try_solve(self, transfer: int, now: float) -> None:
        """When the held symbols suffice: solve, and store each block as if it had arrived.

        The decoder is spent either way. The last block comes back zero-padded to the block
        size; non-zero padding proves a bad symbol, so then nothing is stored (a bad solve
        would otherwise fail verification and cost the whole image). Blocks solved from a
        bad symbol that this cannot see fail verification (``digest-mismatch``).
        """
        dec = self._decoders.get(transfer)
        if dec is None or not dec.unknown:
            self._decoders.pop(transfer, None)  # plain blocks finished the transfer
            return
        if not dec.ready():
            return
        del self._decoders[transfer]
        shape = self.meter.transfer_shape(transfer)
        if shape is None:
            return
        try:
            solved = dec.solve(lambda j: self.meter.stored_block(transfer, j))
        except AmiupError:
            self.coded_dropped += 1  # a block it counted as known is gone: start over
            return
        last = shape.n_blocks - 1
        tail = shape.payload_size - shape.block_size * last
        if any(i == last and any(data[tail:]) for i, data in solved):
            self.coded_dropped += 1
            return
        for i, data in solved:
            self.meter.block(transfer, i, data[:tail] if i == last else data, now)

    def _result(self, transfer: int, component: str, outcome: str, now: float) -> Result:
        running = next(c.running for c in self.status(b"", now).components if c.component == component)
        return Result(transfer, component, running, outcome)

    def alarms(self) -> list[Alarm]:
        """Unsolicited alarms the meter raised (SEC-10), as wire messages."""
        return [Alarm(a.code, (f"{a.component}: " if a.component else "") + a.detail[:180], int(a.time))
                for a in self.meter.pop_alarms()]
