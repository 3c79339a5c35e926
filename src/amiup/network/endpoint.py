"""Adapter between wire messages and the sans-I/O meter API (amiup.meter.Meter).

Every transport (the simulator, CoAP) hands a decoded message and the time to
``MeterEndpoint.handle`` and sends back what it returns. Multicast requests are answered
NACK-style: a meter speaks only when it has something the head-end must act on (a refusal,
missing blocks, a failed check), so a cell of a thousand meters does not answer every
announce. (A damaged frame never gets here: the codec's check drops it, and the block simply
stays missing until it is repaired.)
"""

from __future__ import annotations

from amiup.errors import AmiupError
from amiup.meter.device import Meter
from amiup.meter.report import ComponentStatus as MeterComponent
from amiup.wire import (
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

    def __init__(self, meter: Meter) -> None:
        self.meter = meter
        self._transfers: dict[int, tuple[str, int]] = {}  # transfer -> (component, blocks)

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
            m.block(msg.transfer, msg.index, msg.data, now)
            return []
        if isinstance(msg, GetStatus):
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
            return [Missing(msg.transfer, blocks, bitmap, msg.seq)]
        if isinstance(msg, Verify):
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

    def _result(self, transfer: int, component: str, outcome: str, now: float) -> Result:
        running = next(c.running for c in self.status(b"", now).components if c.component == component)
        return Result(transfer, component, running, outcome)

    def alarms(self) -> list[Alarm]:
        """Unsolicited alarms the meter raised (SEC-10), as wire messages."""
        return [Alarm(a.code, (f"{a.component}: " if a.component else "") + a.detail[:180], int(a.time))
                for a in self.meter.pop_alarms()]
