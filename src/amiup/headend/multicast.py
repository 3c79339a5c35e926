"""Multicast delivery to one cell (sans-I/O): pilot offer, announce, one data round, NACK
rounds repaired by multicast or unicast per the cost rule, multicast verify, then per-meter
read-back sessions.

Steps, each bounded in time and count:

1. *pilot*: a unicast offer to one meter; its accept gives transfer id, block size, count.
2. *announce*: the offer multicast ``k`` times (``repair.announce_repeats``: enough that
   few meters miss them all and need the payload by unicast); meters accept silently and
   refuse loudly (reject with a code).
3. *data*: every block multicast ``r`` times (``proactive_repeats``: 1 on a clean network,
   2 when the expected loss would make nearly every block need a repair), then a ``query``.
4. *NACK rounds*: meters missing blocks answer ``missing``; a meter that never heard the offer
   answers ``reject(not-found)`` and gets the offer by unicast. Per block, the cost rule of
   ``amiup.headend.repair`` picks multicast or unicast; then query again. At most
   ``max_rounds`` rounds.
5. *verify*: multicast ``verify``; a meter whose image is incomplete or bad answers
   ``failed``; incomplete ones get a unicast session (resume from their missing blocks).
6. *read-back*: a multicast ``get_status``; every meter answers with its running version
   (UMS-8). A meter whose answer is missing or not yet final (trial, scheduled, lost
   verify) gets a unicast session that polls, verifies or resumes as its status says.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from amiup.headend.repair import announce_repeats, multicast_mask, proactive_repeats
from amiup.headend.session import REOFFER, Delivery, SessionConfig, UnicastSession
from amiup.wire import (
    Accept,
    Block,
    Failed,
    GetStatus,
    Message,
    Missing,
    Offer,
    Query,
    Reject,
    Status,
    Verify,
    decode_bitmap,
    encode,
)

Dest = str | None  # a meter id, or None for the whole cell (multicast)
Out = list[tuple[Dest, Message]]
Phase = Literal["pilot", "rounds", "verify", "readback", "sessions", "done"]


@dataclass(frozen=True, slots=True)
class MulticastConfig:
    """Repeats, waits and the cost-rule margin of one cell's multicast."""

    announce_repeats: int | None = None  # None: by the cost rule (repair.announce_repeats)
    expected_loss: float = 0.0  # the head-end's estimate; sets the up-front block repeats
    round_wait_s: float = 3.0
    max_rounds: int = 8
    margin: float = 0.0
    pilot_timeout_s: float = 10.0
    pilot_retries: int = 3
    session: SessionConfig = field(default_factory=SessionConfig)


@dataclass
class CellMulticast:
    """Deliver one package to the meters of one cell; ``hops`` maps meter id -> depth.

    ``drain_s(bytes)`` is the transport's estimate of how long a burst of frames takes to
    leave (airtime at the cell's budget); the cell waits that long plus ``round_wait_s``
    for answers before deciding the next round.
    """

    hops: dict[str, int]
    delivery: Delivery
    config: MulticastConfig = field(default_factory=MulticastConfig)
    drain_s_per_byte: float = 0.0
    phase: Phase = "pilot"
    transfer: int | None = None
    block_size: int = 0
    block_count: int = 0
    deadline: float | None = None
    rounds: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    sessions: dict[str, UnicastSession] = field(default_factory=dict)
    _pilots: list[str] = field(default_factory=list)
    _pilot_tries: int = 0
    _nacks: dict[str, set[int]] = field(default_factory=dict)
    _incomplete: set[str] = field(default_factory=set)
    _reoffers: dict[str, int] = field(default_factory=dict)
    multicast_blocks: int = 0
    unicast_blocks: int = 0
    query_seq: int = 0
    confirmed: dict[str, float] = field(default_factory=dict)
    _nonce: bytes = b""
    _expect: float = 0.0

    @property
    def cell_hops(self) -> int:
        return max(self.hops.values(), default=1)

    @property
    def done(self) -> bool:
        return self.phase == "done"

    def results(self) -> dict[str, tuple[str | None, float | None]]:
        """Per meter: (failure code or None, confirm time or None)."""
        out: dict[str, tuple[str | None, float | None]] = {m: (c, None) for m, c in self.failed.items()}
        out.update({m: (None, t) for m, t in self.confirmed.items()})
        for m, s in self.sessions.items():
            if m not in out:
                out[m] = (s.code, s.confirmed_at)
        return out

    # ------------------------------------------------------------------ driving
    def start(self, now: float) -> Out:
        self._pilots = sorted(self.hops, key=lambda m: (self.hops[m], m))
        return self._pilot(now)

    def _pilot(self, now: float) -> Out:
        while self._pilots and self._pilots[0] in self.failed:
            self._pilots.pop(0)
        if not self._pilots:
            self.phase, self.deadline = "done", None
            return []
        self.deadline = now + self.config.pilot_timeout_s
        d = self.delivery
        return [(self._pilots[0], Offer(d.order, d.header, d.block_size))]

    def _drain(self, out: Out) -> float:
        size = 0.0
        for dest, msg in out:
            h = self.cell_hops if dest is None else self.hops.get(dest, 1)
            size += (len(encode(msg)) + 64) * h
        return size * self.drain_s_per_byte

    def _wait(self, out: Out, now: float, answers: float = 0.0, answer_bytes: int = 0) -> Out:
        """Wait for ``out`` to leave, for about ``answers`` replies to come back, and a bit."""
        mean_hops = sum(self.hops.values()) / max(1, len(self.hops))
        back = answers * (answer_bytes + 64) * mean_hops * self.drain_s_per_byte
        self.deadline = now + self._drain(out) + back + self.config.round_wait_s
        return out

    def receive(self, meter: str, msg: Message, now: float) -> Out:
        """A message from ``meter`` of this cell."""
        if isinstance(msg, Status) and msg.nonce == self._nonce and self._nonce:
            self._late_status(meter, msg, now)  # the multicast read-back's answer, late
            self._check_done()
            return []
        if self.phase == "sessions" or meter in self.sessions:
            s = self.sessions.get(meter)
            out: Out = [(meter, m) for m in s.receive(msg, now)] if s else []
            self._check_done()
            return out
        if self.phase == "pilot":
            if meter != (self._pilots[0] if self._pilots else None):
                return []
            if isinstance(msg, Accept):
                return self._announce(msg, now)
            if isinstance(msg, Reject):
                if msg.code in REOFFER and self._retry(meter):
                    return self._pilot(now)
                self.failed[meter] = msg.code
                self._pilot_tries = 0
                return self._pilot(now)
            return []
        if isinstance(msg, Reject):
            if msg.code in REOFFER and self.phase == "rounds" and self._retry(meter):
                d = self.delivery  # never heard the offer, or heard a damaged copy
                return [(meter, Offer(d.order, d.header, d.block_size))]
            if msg.transfer in (0, self.transfer) and msg.code not in REOFFER:
                self.failed[meter] = msg.code
            return []
        if isinstance(msg, Accept) and msg.transfer == self.transfer:
            missing = set(decode_bitmap(msg.missing, msg.block_count))
            if missing:
                self._nacks[meter] = missing
            return []
        if isinstance(msg, Missing) and msg.transfer == self.transfer and self.phase == "rounds":
            if msg.block_count == self.block_count and msg.seq == self.query_seq:
                self._nacks[meter] = set(decode_bitmap(msg.bitmap, msg.block_count))
            return []
        if isinstance(msg, Failed) and msg.transfer == self.transfer and self.phase == "verify":
            if msg.code == "transfer-incomplete":
                self._incomplete.add(meter)
            elif msg.code != "invalid-state":  # e.g. never heard the offer: read-back decides
                self.failed[meter] = msg.code
            return []
        return []

    def postpone(self, until: float) -> None:
        """A delivery window closed: push every wait to ``until`` plus its own length."""
        if self.deadline is not None:
            self.deadline = until + self.config.round_wait_s
        for s in self.sessions.values():
            if s.deadline is not None and not s.done:
                s.deadline = until + s.config.timeout_s

    def _late_status(self, meter: str, msg: Status, now: float) -> None:
        comp = msg.component(self.delivery.component)
        if not (comp and comp.running == self.delivery.version and comp.state in ("committed", "idle")):
            return
        s = self.sessions.get(meter)
        if s is None:
            self.confirmed[meter] = now
        elif s.phase == "readback" and not s.done:  # its own read-back is now redundant
            s.phase, s.deadline, s.confirmed_at = "done", None, now

    def _retry(self, meter: str) -> bool:
        self._reoffers[meter] = self._reoffers.get(meter, 0) + 1
        return self._reoffers[meter] <= self.config.session.max_reoffers

    def expire(self, now: float) -> Out:
        """The current wait is over: decide the next step."""
        if self.deadline is None or now < self.deadline:
            return []
        if self.phase == "pilot":
            self._pilot_tries += 1
            if self._pilot_tries > self.config.pilot_retries and self._pilots:
                self._pilot_tries = 0
                self._pilots.append(self._pilots.pop(0))  # try another meter first
            return self._pilot(now)
        if self.phase == "rounds":
            return self._round(now)
        if self.phase == "verify":
            return self._readback(now)
        if self.phase == "readback":
            return self._sessions(now)
        if self.phase == "sessions":
            out: Out = []
            for m, s in self.sessions.items():
                out += [(m, x) for x in s.expire(now)]
            self._check_done()
            return out
        return []

    @property
    def next_deadline(self) -> float | None:
        if self.phase == "sessions":
            times = [s.deadline for s in self.sessions.values() if s.deadline is not None and not s.done]
            return min(times) if times else None
        return self.deadline

    # ------------------------------------------------------------------ steps
    def _announce(self, acc: Accept, now: float) -> Out:
        self.transfer, self.block_size, self.block_count = acc.transfer, acc.block_size, acc.block_count
        self.phase = "rounds"
        d = self.delivery
        offer = Offer(d.order, d.header, d.block_size)
        hop_sum = float(sum(self.hops.values()))
        announces = self.config.announce_repeats or announce_repeats(
            max(self.config.expected_loss, 0.01), hop_sum, len(d.payload) * 1.1,
            (len(encode(offer)) + 64) * self.cell_hops)
        out: Out = [(None, offer)] * announces
        repeats = proactive_repeats(self.config.expected_loss, hop_sum, self.cell_hops)
        for _ in range(repeats):
            out += [(None, Block(acc.transfer, i, d.block(i, acc.block_size)))
                    for i in range(acc.block_count)]
        self.multicast_blocks += acc.block_count * repeats
        self.query_seq += 1
        out.append((None, Query(acc.transfer, self.query_seq)))
        p_miss = self.config.expected_loss**repeats
        self._expect = len(self.hops) * (1.0 - (1.0 - p_miss) ** acc.block_count)
        return self._wait(out, now, self._expect, 24 + (acc.block_count + 7) // 8)

    def _round(self, now: float) -> Out:
        assert self.transfer is not None
        nacks = {m: s for m, s in self._nacks.items() if s and m not in self.failed}
        self._nacks = {}
        self.rounds += 1
        if not nacks or self.rounds > self.config.max_rounds:
            self.phase = "verify"
            return self._wait([(None, Verify(self.transfer, self.delivery.component))], now)
        meters = sorted(nacks)
        matrix = np.zeros((len(meters), self.block_count), dtype=bool)
        for r, m in enumerate(meters):
            matrix[r, sorted(nacks[m])] = True
        hops = np.array([self.hops.get(m, 1) for m in meters])
        mc = multicast_mask(matrix, hops, self.cell_hops, self.config.margin)
        d = self.delivery
        out: Out = [(None, Block(self.transfer, int(i), d.block(int(i), self.block_size)))
                    for i in np.flatnonzero(mc)]
        self.multicast_blocks += len(out)
        for r, m in enumerate(meters):
            for i in np.flatnonzero(matrix[r] & ~mc):
                out.append((m, Block(self.transfer, int(i), d.block(int(i), self.block_size))))
                self.unicast_blocks += 1
        self.query_seq += 1
        out.append((None, Query(self.transfer, self.query_seq)))
        self._expect = len(nacks) * min(1.0, self.config.expected_loss * 2)
        return self._wait(out, now, self._expect, 24 + (self.block_count + 7) // 8)

    def _readback(self, now: float) -> Out:
        self.phase = "readback"
        self._nonce = hashlib.sha256(f"{self.transfer}/{now}".encode()).digest()[:16]
        ask = GetStatus(self._nonce, self.delivery.component)
        return self._wait([(None, ask)], now, len(self.hops) - len(self.failed), 90)

    def _sessions(self, now: float) -> Out:
        self.phase = "sessions"
        out: Out = []
        for m in sorted(self.hops):
            if m in self.failed or m in self.confirmed:
                continue
            s = UnicastSession(m, self.delivery, self.config.session)
            s.transfer, s.block_size, s.block_count = self.transfer, self.block_size, self.block_count
            self.sessions[m] = s
            first = s.start(now, at="offer" if m in self._incomplete else "readback")
            out += [(m, x) for x in first]
        self._check_done()
        return out

    def _check_done(self) -> None:
        if self.phase == "sessions" and all(s.done for s in self.sessions.values()):
            self.phase, self.deadline = "done", None
