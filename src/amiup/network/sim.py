"""Discrete-event AMI network: cells with meters at hop depths, a shared channel per cell,
priorities, impairments, meters going offline, background reads, airtime per cell.

Used with small fleets, one event per frame, to run the real meter agent behind
``MeterEndpoint``; the million-meter figures come from the aggregated model in
``amiup.headend.fleetmodel``, which is checked against this one. The model of a cell:

* one shared channel of ``C_eff = PHY rate x usable share`` (per meter for cellular); a frame
  to or from a meter at depth ``h`` occupies it for ``h x bytes_on_air / C_eff`` (each hop
  retransmits); a multicast frame occupies it for ``H_cell x bytes_on_air / C_eff``;
* frames wait in three queues served by priority: alarms, then reads, then upgrade traffic;
* after transmission a frame arrives ``h x hop latency`` later; each receiver independently
  loses it with probability ``loss``; surviving frames may be duplicated, delayed (reordered)
  or have one byte corrupted; an offline meter neither sends nor receives.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from amiup.errors import error
from amiup.network.events import EventLoop
from amiup.network.profiles import Profile
from amiup.network.sizes import frame_bytes

PRIORITY = {"alarm": 0, "read": 1, "upgrade": 2}
Deliver = Callable[[bytes, bool], None]  # (frame, multicast)
Uplink = Callable[[str, bytes], None]  # (meter id, frame)


@dataclass(frozen=True, slots=True)
class Impairments:
    """Per-receiver frame impairments on top of the profile's link."""

    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    reorder_s: float = 1.0
    corrupt: float = 0.0

    def __post_init__(self) -> None:
        for name in ("loss", "duplicate", "reorder", "corrupt"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise error("invalid-argument", f"{name} must be in [0, 1)")


@dataclass
class _Frame:
    data: bytes
    kind: str
    meter: str | None  # None: multicast to the cell
    uplink: bool
    hops: int
    started: float
    on_read: float = -1.0  # background read: time the request was issued
    background: bool = False


@dataclass
class Cell:
    """One collector / access point and its shared channel."""

    name: str
    meters: list[str] = field(default_factory=list)
    hops: dict[str, int] = field(default_factory=dict)
    queues: tuple[deque[_Frame], ...] = field(default_factory=lambda: (deque(), deque(), deque()))
    busy: bool = False
    airtime: dict[str, float] = field(default_factory=lambda: {k: 0.0 for k in PRIORITY})

    @property
    def depth(self) -> int:
        return max(self.hops.values(), default=1)

    @property
    def airtime_bytes(self) -> float:
        return sum(self.airtime.values())


class SimNetwork:
    """The network between one head-end and its meters, on an ``EventLoop``."""

    def __init__(self, loop: EventLoop, profile: Profile, impairments: Impairments | None = None,
                 seed: int = 1) -> None:
        self.loop = loop
        self.profile = profile
        self.imp = impairments or Impairments()
        self.rng = random.Random(seed)
        self.cells: dict[str, Cell] = {}
        self._cell_of: dict[str, Cell] = {}
        self._deliver: dict[str, Deliver] = {}
        self.online: dict[str, bool] = {}
        self._uplink: Uplink | None = None
        self.read_latencies: list[float] = []
        self.reads_lost = 0
        self.frames_lost = 0

    # ------------------------------------------------------------------ topology
    def add_meter(self, meter_id: str, cell: str, hops: int, deliver: Deliver) -> None:
        """Place a meter at ``hops`` from the collector of ``cell``."""
        if not 1 <= hops <= 16:
            raise error("invalid-argument", f"hop depth {hops} not in 1..16")
        c = self.cells.setdefault(cell, Cell(cell))
        c.meters.append(meter_id)
        c.hops[meter_id] = hops
        self._cell_of[meter_id] = c
        self._deliver[meter_id] = deliver
        self.online[meter_id] = True

    def on_uplink(self, receive: Uplink) -> None:
        """Where frames from meters arrive (the head-end)."""
        self._uplink = receive

    def set_online(self, meter_id: str, online: bool) -> None:
        self.online[meter_id] = online

    def cell_of(self, meter_id: str) -> Cell:
        return self._cell_of[meter_id]

    # ------------------------------------------------------------------ sending
    def cost(self, nbytes: int, meter_id: str | None = None, cell: str | None = None) -> float:
        """Airtime (bytes on air x hops) a frame will take: what budgets are counted in."""
        c = self._cell_of[meter_id] if meter_id is not None else self.cells[str(cell)]
        hops = c.hops[meter_id] if meter_id is not None else c.depth
        return float(frame_bytes(nbytes, self.profile) * hops)

    def down(self, meter_id: str, data: bytes, kind: str = "upgrade") -> None:
        """Unicast from the head-end to a meter."""
        c = self._cell_of[meter_id]
        self._enqueue(c, _Frame(data, kind, meter_id, False, c.hops[meter_id], self.loop.now))

    def multicast(self, cell: str, data: bytes, kind: str = "upgrade") -> None:
        """One frame to every meter of ``cell`` (flooded to the deepest hop)."""
        c = self.cells[cell]
        self._enqueue(c, _Frame(data, kind, None, False, c.depth, self.loop.now))

    def up(self, meter_id: str, data: bytes, kind: str = "upgrade") -> None:
        """From a meter to the head-end (dropped while the meter is offline)."""
        if not self.online[meter_id]:
            return
        c = self._cell_of[meter_id]
        self._enqueue(c, _Frame(data, kind, meter_id, True, c.hops[meter_id], self.loop.now))

    def _enqueue(self, cell: Cell, frame: _Frame) -> None:
        cell.queues[PRIORITY[frame.kind]].append(frame)
        if not cell.busy:
            self._start(cell)

    def _start(self, cell: Cell) -> None:
        frame = next((q.popleft() for q in cell.queues if q), None)
        if frame is None:
            cell.busy = False
            return
        cell.busy = True
        on_air = frame_bytes(len(frame.data), self.profile) * frame.hops
        cell.airtime[frame.kind] += on_air
        duration = on_air * 8.0 / self.profile.c_eff_bps

        def finished() -> None:
            self._arrive(cell, frame)
            self._start(cell)

        self.loop.schedule(duration, finished, priority=0)

    # ------------------------------------------------------------------ arrival
    def _arrive(self, cell: Cell, frame: _Frame) -> None:
        if frame.uplink:
            targets: list[str | None] = [None]
        elif frame.meter is None:
            targets = list(cell.meters)
        else:
            targets = [frame.meter]
        for target in targets:
            hops = frame.hops if target is None else cell.hops[target]
            if target is not None and not self.online[target]:
                continue
            if self.rng.random() < self.imp.loss:
                self.frames_lost += 1
                if frame.background and frame.uplink:
                    self.reads_lost += 1
                continue
            copies = 2 if self.rng.random() < self.imp.duplicate else 1
            for _ in range(copies):
                delay = hops * self.profile.hop_latency_s
                if self.rng.random() < self.imp.reorder:
                    delay += self.rng.random() * self.imp.reorder_s
                data = frame.data
                if frame.kind == "upgrade" and data and self.rng.random() < self.imp.corrupt:
                    pos = self.rng.randrange(len(data))
                    data = data[:pos] + bytes([data[pos] ^ (1 + self.rng.randrange(255))]) + data[pos + 1 :]
                self.loop.schedule(delay, self._handover(frame, target, data), priority=1)

    def _handover(self, frame: _Frame, target: str | None, data: bytes) -> Callable[[], None]:
        def run() -> None:
            if frame.background:
                self._read_arrived(frame, target)
            elif target is None:
                if self._uplink is not None and frame.meter is not None:
                    self._uplink(frame.meter, data)
            elif self.online[target]:
                self._deliver[target](data, frame.meter is None)

        return run

    # ------------------------------------------------------------------ background reads
    def _read_arrived(self, frame: _Frame, target: str | None) -> None:
        if target is not None:  # request reached the meter: it answers with its readings
            if self.online[target]:
                c = self._cell_of[target]
                self._enqueue(c, _Frame(b"\x00" * 160, "read", target, True, c.hops[target],
                                        self.loop.now, frame.started, background=True))
        else:
            self.read_latencies.append(self.loop.now - frame.on_read)

    def start_reads(self, interval_s: float, until: float, seed: int = 7) -> None:
        """Background AMI reads: each meter read on average every ``interval_s`` seconds."""
        rng = random.Random(seed)
        for cell in self.cells.values():
            rate = len(cell.meters) / interval_s

            def issue(cell: Cell = cell, rate: float = rate) -> None:
                meter = rng.choice(cell.meters)
                if self.online[meter]:
                    self._enqueue(cell, _Frame(b"\x00" * 24, "read", meter, False,
                                               cell.hops[meter], self.loop.now, background=True))
                gap = rng.expovariate(rate)
                if self.loop.now + gap < until:
                    self.loop.schedule(gap, issue, priority=2)

            self.loop.schedule(rng.expovariate(rate), issue, priority=2)
