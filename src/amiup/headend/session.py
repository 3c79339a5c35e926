"""Per-meter delivery session (sans-I/O): offer, windowed blocks, selective repeat, verify,
activate, read back the running version; timeouts and retries with exponential backoff.

The session never sends anything itself: ``start``/``receive``/``expire`` return the messages
to send, and ``deadline`` says when ``expire`` is due. Stale, duplicated or reordered replies
are ignored, so any transport (the simulator, CoAP) can drive it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal

from amiup.errors import error
from amiup.wire import (
    Accept,
    Activate,
    Block,
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
    decode_bitmap,
    encode,
)

Phase = Literal["offer", "send", "query", "verify", "activate", "readback", "wait", "done", "failed"]
RETRIABLE = frozenset({"timeout", "unreachable", "busy", "transfer-incomplete", "not-found"})
REOFFER = frozenset({"not-found", "bad-signature", "malformed-message"})
"""Refusals worth one more offer: a lost transfer, or an offer damaged in transit (the
head-end verified the package itself on import, so a persistent failure still fails)."""
FRAME_OVERHEAD = 64
"""Link bytes per frame (MAC .. CoAP) the head-end counts when it estimates airtime."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """What to deliver to one component: signed order and header, payload, target version.

    ``activate``: ``None`` lets the order's own activation apply (now, at a time, on
    command); ``"now"`` or a unix time makes the head-end send ``activate`` after verify.
    """

    order: bytes
    header: bytes
    payload: bytes
    component: str
    version: str
    block_size: int = 1024
    activate: Literal["now"] | int | None = None

    def block(self, index: int, size: int) -> bytes:
        return self.payload[index * size : (index + 1) * size]


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Pacing and patience: window of blocks per query, timeouts, retries, backoff.

    ``drain_s_per_byte``: seconds a byte on air takes at the cell's budget (0: unknown). A
    deadline then also counts the airtime of what was just sent, so a window of blocks
    on a slow, deep link is not taken for a lost request.
    """

    window: int = 16
    timeout_s: float = 10.0
    max_retries: int = 5
    backoff: float = 2.0
    max_backoff_s: float = 600.0
    poll_s: float = 30.0  # read-back while a trial or a scheduled activation runs
    max_polls: int = 200
    max_reoffers: int = 5
    signed_readback: bool = False  # ask for the meter's signed report (~1.4 KiB) on read-back
    wait_for_activation: bool = True  # False: a scheduled activation ends the session
    drain_s_per_byte: float = 0.0


@dataclass
class UnicastSession:
    """One meter, one component: drive the transfer to a confirmed version or a failure.

    ``hops``: the meter's depth; every frame to it crosses that many links (drain time).
    """

    meter_id: str
    delivery: Delivery
    config: SessionConfig = field(default_factory=SessionConfig)
    hops: int = 1
    phase: Phase = "offer"
    transfer: int | None = None
    block_size: int = 0
    block_count: int = 0
    missing: set[int] = field(default_factory=set)
    deadline: float | None = None
    code: str | None = None
    retries: int = 0
    polls: int = 0
    reoffers: int = 0
    blocks_sent: int = 0
    query_seq: int = 0
    confirmed_at: float | None = None
    _last: list[Message] = field(default_factory=list)
    _nonce: bytes = b""
    _activated: bool = False
    _replayed: bool = False  # an order-replayed refusal was answered by a read-back once

    # ------------------------------------------------------------------ driving
    def start(self, now: float, *, at: Phase = "offer") -> list[Message]:
        """Begin (or resume) at ``offer``; after a multicast transfer (``transfer`` set) at
        ``readback``, or at ``verify`` when the meter is known to hold the whole image."""
        self.retries = 0
        if at == "readback":
            return self._readback(now)
        if at == "verify" and self.transfer is not None:
            return self._request("verify", [Verify(self.transfer, self.delivery.component)], now)
        return self._offer(now)

    @property
    def done(self) -> bool:
        """Finished: confirmed (``confirmed_at`` set), staged (code verified/scheduled), or failed."""
        return self.phase in ("done", "failed")

    def expire(self, now: float) -> list[Message]:
        """The deadline passed: resend the last request with backoff, or give up."""
        if self.deadline is None or now < self.deadline or self.done:
            return []
        if self.phase == "wait":
            return self._readback(now)
        self.retries += 1
        if self.retries > self.config.max_retries:
            return self._fail("timeout", now)
        self._arm(now, self._last)
        return list(self._last)

    def receive(self, msg: Message, now: float) -> list[Message]:
        """A reply from the meter; returns the next messages to send."""
        if self.done:
            return []
        if isinstance(msg, Reject | Failed) and msg.code == "invalid-state":
            if self.phase in ("verify", "activate", "query"):
                return self._readback(now)  # e.g. a repeated verify after the image went live
            return []
        if isinstance(msg, Reject) and msg.transfer == 0 and self.phase != "offer":
            return []  # a late answer to a duplicated offer
        if isinstance(msg, Reject) and self._ours(msg.transfer, allow_zero=True):
            if self.phase == "offer" and msg.code == "order-replayed" and self.transfer is not None \
                    and not self._replayed:
                # a resume after a multicast, but the meter has used the order already: it
                # most likely finished meanwhile (its answer was lost), so read back first
                self._replayed = True
                return self._readback(now)
            if self.phase != "readback" and msg.code in REOFFER and self.reoffers < self.config.max_reoffers:
                # the meter lost the transfer, or the offer was damaged on the way
                self.reoffers += 1
                return self._offer(now)
            return self._fail(msg.code, now)
        if isinstance(msg, Accept) and self.phase == "offer":
            return self._accepted(msg, now)
        if isinstance(msg, Missing) and self.phase == "query" and self._ours(msg.transfer):
            if msg.block_count != self.block_count or msg.seq != self.query_seq:
                return []  # stale: answers an earlier query
            self.missing = set(decode_bitmap(msg.bitmap, msg.block_count))
            self.retries = 0
            return self._send_window(now)
        if isinstance(msg, Verified) and self.phase == "verify" and self._ours(msg.transfer):
            self.retries = 0  # progress: the next request gets the full patience again
            return self._after_verify(now)
        if isinstance(msg, Failed) and self.phase == "verify" and self._ours(msg.transfer):
            if msg.code == "transfer-incomplete" and self.reoffers < self.config.max_reoffers:
                self.reoffers += 1
                return self._offer(now)
            return self._fail(msg.code, now)
        if isinstance(msg, Result) and self.phase == "activate" \
                and self._ours(msg.transfer, allow_zero=True):
            self.retries = 0
            return self._readback(now)
        if isinstance(msg, Status) and self.phase == "readback" and msg.nonce == self._nonce:
            return self._read(msg, now)
        return []

    # ------------------------------------------------------------------ steps
    def _ours(self, transfer: int, *, allow_zero: bool = False) -> bool:
        return transfer == self.transfer or (allow_zero and transfer == 0)

    def _arm(self, now: float, sent: list[Message]) -> None:
        """Deadline: the (backed-off) timeout plus the time ``sent`` takes to leave."""
        wait = min(self.config.timeout_s * self.config.backoff ** self.retries, self.config.max_backoff_s)
        if self.config.drain_s_per_byte > 0.0 and sent:
            on_air = sum(len(encode(m)) + FRAME_OVERHEAD for m in sent)
            wait += on_air * self.hops * self.config.drain_s_per_byte
        self.deadline = now + wait

    def _request(self, phase: Phase, msgs: list[Message], now: float) -> list[Message]:
        self.phase = phase
        self._last = [msgs[-1]]  # on timeout only the request is repeated, not the blocks
        self._arm(now, msgs)
        return msgs

    def _offer(self, now: float) -> list[Message]:
        d = self.delivery
        return self._request("offer", [Offer(d.order, d.header, d.block_size)], now)

    def _accepted(self, msg: Accept, now: float) -> list[Message]:
        expected = -(-len(self.delivery.payload) // msg.block_size)
        if msg.component != self.delivery.component or msg.block_count != expected:
            return self._fail("malformed-message", now)
        self.transfer, self.block_size, self.block_count = msg.transfer, msg.block_size, msg.block_count
        self.missing = set(decode_bitmap(msg.missing, msg.block_count))
        self.retries = 0
        return self._send_window(now)

    def _send_window(self, now: float) -> list[Message]:
        """Selective repeat: the next ``window`` missing blocks, then a query."""
        assert self.transfer is not None
        if not self.missing:
            return self._request("verify", [Verify(self.transfer, self.delivery.component)], now)
        picks = sorted(self.missing)[: self.config.window]
        blocks: list[Message] = [
            Block(self.transfer, i, self.delivery.block(i, self.block_size)) for i in picks
        ]
        self.blocks_sent += len(blocks)
        self.query_seq += 1
        return self._request("query", [*blocks, Query(self.transfer, self.query_seq)], now)

    def _after_verify(self, now: float) -> list[Message]:
        act = self.delivery.activate
        if act is None:
            return self._readback(now)
        at = None if act == "now" else int(act)
        self._activated = True
        msg = Activate(self.transfer or 0, self.delivery.component, at)
        return self._request("activate", [msg], now)

    def _readback(self, now: float) -> list[Message]:
        """Ask for the running version (UMS-8): only a read-back confirms an upgrade."""
        seed = f"{self.meter_id}/{self.polls}/{now}".encode()
        self._nonce = hashlib.sha256(seed).digest()[:16]
        self.retries = 0 if self.phase == "wait" else self.retries
        ask = GetStatus(self._nonce, self.delivery.component, self.config.signed_readback)
        return self._request("readback", [ask], now)

    def _read(self, msg: Status, now: float) -> list[Message]:
        comp = msg.component(self.delivery.component)
        if comp is None:
            return self._fail("malformed-message", now)
        if comp.running == self.delivery.version and comp.state in ("committed", "idle"):
            self.phase, self.deadline, self.confirmed_at = "done", None, now
            return []
        if comp.state in ("reverted", "failed"):
            return self._fail(comp.code or comp.state, now)
        if comp.state in ("receiving", "received") and self.transfer is not None \
                and comp.transfer == self.transfer:
            self.retries = 0
            if comp.state == "received":
                return self._request("verify", [Verify(self.transfer, self.delivery.component)], now)
            return self._offer(now)
        if comp.state in ("verified", "scheduled") and self.delivery.activate is not None \
                and self.phase != "activate" and not self._activated:
            self._activated = True  # staged by an earlier delivery: activate it as asked
            return self._after_verify(now)
        if comp.state in ("trial", "activating", "scheduled", "verifying", "verified"):
            if comp.state == "scheduled" and not self.config.wait_for_activation:
                self.phase, self.deadline, self.code = "done", None, "scheduled"  # staged only
                return []
            if comp.state == "verified" and self.delivery.activate is None:
                # on-command order: delivery ends at verified; the UMS activates later
                self.phase, self.deadline, self.code = "done", None, "verified"
                return []
            self.polls += 1
            if self.polls > self.config.max_polls:
                return self._fail("timeout", now)
            self.phase, self.deadline = "wait", now + self.config.poll_s
            return []
        # another version runs and nothing of ours is pending: the meter lost our transfer
        if self.reoffers < self.config.max_reoffers:
            self.reoffers += 1
            return self._offer(now)
        return self._fail("invalid-state", now)

    def _fail(self, code: str, now: float) -> list[Message]:
        self.phase, self.code, self.deadline = "failed", code, None
        return []

    @property
    def retriable(self) -> bool:
        """A failure the UMS may retry later (meter offline, busy, lost transfer)."""
        return self.phase == "failed" and self.code in RETRIABLE

    def resume(self, now: float) -> list[Message]:
        """Start again after a retriable failure: the meter's accept says what is missing."""
        if not self.retriable:
            raise error("invalid-state", f"session is {self.phase} ({self.code})")
        self.code, self.reoffers, self.polls = None, 0, 0
        return self.start(now)
