"""Run a delivery over the simulated network with real meter agents, one event per frame.

Wires ``UnicastSession`` / ``CellMulticast`` (head-end), ``SimNetwork`` (network) and
``MeterEndpoint`` (the real ``amiup.meter.Meter`` behind the wire codec). Every message is
encoded, carried as bytes (so loss, duplication, reordering and corruption act on the real
encoding) and decoded on the other side. Upgrade frames pass a per-cell token bucket and the
delivery windows before they reach the channel (AMI-3). A retriable failure (meter offline)
is retried after ``retry_after_s``, resuming from the meter's missing blocks (SM-2, UMS-9).
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from amiup.errors import AmiupError
from amiup.headend.multicast import CellMulticast, MulticastConfig, Out
from amiup.headend.session import Delivery, SessionConfig, UnicastSession
from amiup.headend.traffic import DeliveryWindows, TokenBucket, cell_budget
from amiup.network.endpoint import MeterEndpoint
from amiup.network.events import EventLoop
from amiup.network.sim import SimNetwork
from amiup.wire import Alarm, GetStatus, Message, Running, decode, encode


@dataclass(frozen=True, slots=True)
class SimMeter:
    """A meter endpoint placed in a cell at a hop depth."""

    endpoint: MeterEndpoint
    cell: str
    hops: int


@dataclass(frozen=True, slots=True)
class RunConfig:
    """Strategy and head-end policy for a simulated delivery."""

    strategy: Literal["unicast", "multicast"] = "unicast"
    share: float = 1.0
    windows: DeliveryWindows = field(default_factory=DeliveryWindows)
    session: SessionConfig = field(default_factory=SessionConfig)
    multicast: MulticastConfig = field(default_factory=MulticastConfig)
    concurrency: int = 8  # unicast sessions at once per cell
    retry_after_s: float = 600.0
    max_attempts: int = 5
    traffic_class: Literal["upgrade", "read"] = "upgrade"  # "read": no priority for reads
    gather: bool = True  # multicast read-back gathered up the mesh's routing tree
    tree_seed: int = 1


@dataclass
class Outcome:
    """Where one meter ended: confirmed (with time) or failed (with code)."""

    code: str | None = None
    confirmed_at: float | None = None
    attempts: int = 0
    blocks_sent: int = 0


class SimDelivery:
    """One package delivered to a set of simulated meters."""

    def __init__(self, loop: EventLoop, net: SimNetwork, meters: list[SimMeter],
                 delivery: Delivery, config: RunConfig | None = None) -> None:
        self.loop, self.net, self.delivery = loop, net, delivery
        self.config = config or RunConfig()
        self.meters = {m.endpoint.meter_id: m for m in meters}
        self.outcomes: dict[str, Outcome] = {mid: Outcome() for mid in self.meters}
        self.alarms: list[tuple[str, Alarm]] = []
        self.dropped_frames = 0
        self.sessions: dict[str, UnicastSession] = {}
        self.cells: dict[str, CellMulticast] = {}
        self._waiting: dict[str, deque[str]] = {}
        self._active: dict[str, set[str]] = {}
        self._pace: dict[str, deque[tuple[str | None, bytes]]] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self._pump_at: dict[str, float] = {}
        self._tick_at: dict[str, float] = {}
        self._timer_at: dict[str, float] = {}
        for m in meters:
            mid = m.endpoint.meter_id
            net.add_meter(mid, m.cell, m.hops, self._deliver_fn(mid))
            self._waiting.setdefault(m.cell, deque())
            self._active.setdefault(m.cell, set())
            self._pace.setdefault(m.cell, deque())
        for cell in self._pace:
            self._buckets[cell] = cell_budget(net.profile.c_eff_bps, self.config.share)
        # seconds per byte on air at the upgrade budget: sessions wait for their frames to leave
        self.drain_s_per_byte = 8.0 / (net.profile.c_eff_bps * self.config.share)
        session = self.config.session
        self._session_cfg = session if session.drain_s_per_byte else \
            dataclasses.replace(session, drain_s_per_byte=self.drain_s_per_byte)
        net.on_uplink(self._headend_rx)
        self._gather = self.config.gather and self.config.strategy == "multicast" \
            and net.profile.multicast and net.profile.shared_cell
        if self._gather:  # meters relay: gather the read-back answers up a routing tree
            net.build_tree(seed=self.config.tree_seed)
            net.relay_cost = lambda cell, cost: self._buckets[cell].spend(cost, self.loop.now)

    # ------------------------------------------------------------------ start / results
    def start(self) -> None:
        """Begin delivery in every cell."""
        now = self.loop.now
        opens = self.config.windows.next_open(now)
        if opens > now:
            self.loop.at(opens, self.start)
            return
        if self.config.strategy == "multicast" and self.net.profile.multicast:
            for cell in self._pace:
                hops = {mid: m.hops for mid, m in self.meters.items() if m.cell == cell}
                mc = dataclasses.replace(self.config.multicast, gather=self._gather,
                                         hop_latency_s=self.net.profile.hop_latency_s)
                cm = CellMulticast(hops, self.delivery, mc, self.drain_s_per_byte)
                self.cells[cell] = cm
                self._send(cell, cm.start(now))
                self._arm_cell(cell)
        else:
            for mid, m in self.meters.items():
                self._waiting[m.cell].append(mid)
            for cell in self._waiting:
                self._fill(cell)

    def run(self, until: float, max_steps: int = 5_000_000) -> dict[str, Outcome]:
        self.loop.run(until, max_steps=max_steps)
        return self.outcomes

    @property
    def confirmed(self) -> list[str]:
        return [m for m, o in self.outcomes.items() if o.confirmed_at is not None]

    # ------------------------------------------------------------------ meter side
    def _deliver_fn(self, mid: str) -> Callable[[bytes, bool], None]:
        def deliver(data: bytes, multicast: bool) -> None:
            self._meter_rx(mid, data, multicast)

        return deliver

    def _meter_rx(self, mid: str, data: bytes, multicast: bool) -> None:
        now = self.loop.now
        try:
            msg = decode(data)
        except AmiupError:
            self.dropped_frames += 1  # damaged in transit: stays missing, gets repaired
            return
        ep = self.meters[mid].endpoint
        if not ep.meter.reachable:  # a broken ami_comm image on trial cannot talk
            self._arm_tick(mid)
            return
        for reply in ep.handle(msg, now, multicast=multicast):
            if isinstance(msg, GetStatus) and msg.gather_ms and isinstance(reply, Running):
                self.net.gather(mid, reply, tuple(w / 1000.0 for w in msg.gather_ms))
            else:
                self.net.up(mid, encode(reply), self.config.traffic_class)
        for alarm in ep.alarms():
            self.net.up(mid, encode(alarm), "alarm")
        self._arm_tick(mid)

    def _arm_tick(self, mid: str) -> None:
        due = self.meters[mid].endpoint.meter.next_deadline()
        if due is None or self._tick_at.get(mid, float("inf")) <= due:
            return
        self._tick_at[mid] = due

        def tick() -> None:
            if self._tick_at.get(mid) != due:
                return
            del self._tick_at[mid]
            ep = self.meters[mid].endpoint
            ep.meter.tick(self.loop.now)
            for alarm in ep.alarms():
                self.net.up(mid, encode(alarm), "alarm")
            self._arm_tick(mid)

        self.loop.at(due, tick)

    # ------------------------------------------------------------------ head-end side
    def _headend_rx(self, mid: str, data: bytes, relayed: bool = False) -> None:
        now = self.loop.now
        # replies spent airtime too: charge them to the cell's budget (it may go negative);
        # a gathered answer was charged frame by frame on its way up (net.relay_cost)
        if not relayed:
            self._buckets[self.meters[mid].cell].spend(self.net.cost(len(data), meter_id=mid), now)
        try:
            msg = decode(data)
        except AmiupError:
            self.dropped_frames += 1
            return
        if isinstance(msg, Alarm):
            self.alarms.append((mid, msg))
            return
        cell = self.meters[mid].cell
        if mid in self.sessions:
            self._session_out(mid, self.sessions[mid].receive(msg, now))
        elif cell in self.cells:
            self._send(cell, self.cells[cell].receive(mid, msg, now))
            self._arm_cell(cell)

    def _session_out(self, mid: str, msgs: list[Message]) -> None:
        cell = self.meters[mid].cell
        self._send(cell, [(mid, m) for m in msgs])
        s = self.sessions[mid]
        if s.done:
            self._finished(mid, s)
        else:
            self._arm_session(mid)

    def _finished(self, mid: str, s: UnicastSession) -> None:
        cell = self.meters[mid].cell
        out = self.outcomes[mid]
        out.blocks_sent += s.blocks_sent
        s.blocks_sent = 0
        self._active[cell].discard(mid)
        if s.phase == "done":
            out.code, out.confirmed_at = s.code, s.confirmed_at
        elif s.retriable and out.attempts < self.config.max_attempts:
            out.code = s.code
            self.loop.schedule(self.config.retry_after_s, lambda: self._requeue(mid))
        else:
            out.code = s.code
        self._fill(cell)

    def _requeue_fn(self, mid: str) -> Callable[[], None]:
        return lambda: self._requeue(mid)

    def _requeue(self, mid: str) -> None:
        self._waiting[self.meters[mid].cell].append(mid)
        self._fill(self.meters[mid].cell)

    def _fill(self, cell: str) -> None:
        """Start unicast sessions up to the per-cell concurrency (only in a delivery window)."""
        opens = self.config.windows.next_open(self.loop.now)
        if opens > self.loop.now and self._waiting[cell]:
            self.loop.at(opens, lambda: self._fill(cell))
            return
        while self._waiting[cell] and len(self._active[cell]) < self.config.concurrency:
            mid = self._waiting[cell].popleft()
            out = self.outcomes[mid]
            out.attempts += 1
            prev = self.sessions.get(mid)
            s = UnicastSession(mid, self.delivery, self._session_cfg, hops=self.meters[mid].hops)
            if prev is not None:  # a retry reads the meter first: it may be done already
                s.transfer = prev.transfer
            self.sessions[mid] = s
            self._active[cell].add(mid)
            self._session_out(mid, s.start(self.loop.now, at="offer" if prev is None else "readback"))

    def _arm_session(self, mid: str) -> None:
        due = self.sessions[mid].deadline
        if due is None or self._timer_at.get(mid, float("inf")) <= due:
            return
        self._timer_at[mid] = due

        def fire() -> None:
            if self._timer_at.get(mid) == due:
                del self._timer_at[mid]
            s = self.sessions[mid]
            opens = self.config.windows.next_open(self.loop.now)
            if not s.done and opens > self.loop.now:  # window closed: wait, do not time out
                s.deadline = opens + s.config.timeout_s
                self._arm_session(mid)
                return
            if not s.done and s.deadline is not None and self.loop.now >= s.deadline:
                self._session_out(mid, s.expire(self.loop.now))
            elif not s.done:
                self._arm_session(mid)

        self.loop.at(due, fire)

    def _arm_cell(self, cell: str) -> None:
        cm = self.cells.get(cell)
        if cm is None:
            return
        if cm.done:
            self._cell_done(cell)
            return
        due = cm.next_deadline
        key = f"cell:{cell}"
        if due is None or self._timer_at.get(key, float("inf")) <= due:
            return
        self._timer_at[key] = due

        def fire() -> None:
            if self._timer_at.get(key) == due:
                del self._timer_at[key]
            if cell not in self.cells:
                return
            opens = self.config.windows.next_open(self.loop.now)
            if opens > self.loop.now:  # window closed: hold the cell's clock
                cm.postpone(opens)
                self._arm_cell(cell)
                return
            self._send(cell, cm.expire(self.loop.now))
            self._arm_cell(cell)

        self.loop.at(due, fire)

    def _cell_done(self, cell: str) -> None:
        """Copy the cell's results; meters that failed retriably go to unicast retries."""
        cm = self.cells.pop(cell)
        for mid, (code, at) in cm.results().items():
            out = self.outcomes[mid]
            out.attempts += 1
            s = cm.sessions.get(mid)
            if s is not None:
                out.blocks_sent += s.blocks_sent
            out.code, out.confirmed_at = code, at
            if at is None and (s is None or s.retriable) and code in (None, "timeout", "not-found", "busy"):
                self.sessions[mid] = s or UnicastSession(mid, self.delivery, self._session_cfg,
                                                         hops=self.meters[mid].hops)
                self.loop.schedule(self.config.retry_after_s, self._requeue_fn(mid))

    # ------------------------------------------------------------------ pacing
    def _send(self, cell: str, out: Out) -> None:
        q = self._pace[cell]
        for dest, msg in out:
            q.append((dest, encode(msg)))
        self._pump(cell)

    def _pump_fn(self, cell: str, when: float) -> Callable[[], None]:
        return lambda: self._pumped(cell, when)

    def _pumped(self, cell: str, when: float) -> None:
        if self._pump_at.get(cell) == when:
            del self._pump_at[cell]
            self._pump(cell)

    def _pump(self, cell: str) -> None:
        q = self._pace[cell]
        bucket = self._buckets[cell]
        while q:
            now = self.loop.now
            dest, data = q[0]
            opens = self.config.windows.next_open(now)
            cost = self.net.cost(len(data), meter_id=dest, cell=cell)
            wait = opens - now if opens > now else bucket.delay(cost, now)
            if wait > 0:
                when = now + wait
                if self._pump_at.get(cell, float("inf")) > when:
                    self._pump_at[cell] = when
                    self.loop.at(when, self._pump_fn(cell, when))
                return
            q.popleft()
            bucket.spend(cost, now)
            if dest is None:
                self.net.multicast(cell, data, self.config.traffic_class)
            else:
                self.net.down(dest, data, self.config.traffic_class)
