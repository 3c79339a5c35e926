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

Gathered read-back (``gather``, ``amiup.network.gather``): each cell has a routing tree
(``build_tree``, or ``add_meter(parent=...)``; without one every meter is a child of the
collector). A meter's brief answer goes to its own ``GatherNode``; at the node's flush its
``gathered`` frames go ONE hop up the tree (``hops - parent hops`` on the channel, "upgrade"
priority, the same impairments) to the parent's node, or from a depth-1 meter to the
collector, which splits them into one ``running`` per meter for the uplink.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from amiup.errors import AmiupError, error
from amiup.network.events import EventLoop
from amiup.network.gather import GatherNode, split
from amiup.network.profiles import Profile
from amiup.network.sizes import frame_bytes
from amiup.wire import Gathered, Running, decode, encode
from amiup.wire.brief import roster, short_id

PRIORITY = {"alarm": 0, "read": 1, "upgrade": 2}
Deliver = Callable[[bytes, bool], None]  # (frame, multicast)
Uplink = Callable[[str, bytes, bool], None]  # (meter id, frame, relayed: airtime paid on the way)
RelayCost = Callable[[str, float], None]  # (cell, bytes on air x hops) of a gathered frame


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
    relay: bool = False  # a gathered frame going one hop up the routing tree
    to: str | None = None  # relay: the parent meter (None: the collector)


@dataclass
class Cell:
    """One collector / access point and its shared channel."""

    name: str
    meters: list[str] = field(default_factory=list)
    hops: dict[str, int] = field(default_factory=dict)
    queues: tuple[deque[_Frame], ...] = field(default_factory=lambda: (deque(), deque(), deque()))
    busy: bool = False
    airtime: dict[str, float] = field(default_factory=lambda: {k: 0.0 for k in PRIORITY})
    parent: dict[str, str | None] = field(default_factory=dict)  # routing tree; None: collector
    nodes: dict[str, GatherNode] = field(default_factory=dict)  # gathering state, made on use
    _children: dict[str, list[str]] | None = None
    _roster: dict[bytes, str | None] | None = None

    @property
    def depth(self) -> int:
        return max(self.hops.values(), default=1)

    @property
    def airtime_bytes(self) -> float:
        return sum(self.airtime.values())

    def children(self) -> dict[str, list[str]]:
        """Children of each meter in the routing tree (cached until the tree changes)."""
        if self._children is None:
            self._children = {}
            for m in self.meters:
                parent = self.parent.get(m)
                if parent is not None:
                    self._children.setdefault(parent, []).append(m)
        return self._children

    def roster(self) -> dict[bytes, str | None]:
        """Short id -> meter id of this cell's meters, as the collector knows its nodes."""
        if self._roster is None:
            self._roster = roster(self.meters)
        return self._roster

    def hops_up(self, meter_id: str) -> int:
        """Hops from a meter to its parent in the routing tree (to the collector: its depth)."""
        parent = self.parent.get(meter_id)
        return self.hops[meter_id] - (self.hops[parent] if parent is not None else 0)


@dataclass
class GatherStats:
    """What the gathered read-backs of a network did (all cells)."""

    frames: int = 0  # gathered frames put on the channel
    late: int = 0  # of which forwarded at once (late or another read-back), not merged
    corrupt: int = 0  # frames dropped because they failed to decode
    unresolved: int = 0  # entries whose short id names no meter, or two, of the cell
    lost_offline: int = 0  # entries lost with a node that was offline at its flush or arrival
    answers: int = 0  # (meter, running) handed to the uplink by collectors


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
        self.relay_cost: RelayCost | None = None  # charged when a gathered frame is sent
        self.read_latencies: list[float] = []
        self.reads_lost = 0
        self.frames_lost = 0
        self.gather_stats = GatherStats()

    # ------------------------------------------------------------------ topology
    def add_meter(self, meter_id: str, cell: str, hops: int, deliver: Deliver,
                  parent: str | None = None) -> None:
        """Place a meter at ``hops`` from the collector of ``cell``; ``parent`` (a meter of
        the same cell placed before, shallower) is its next hop up in the routing tree."""
        if not 1 <= hops <= 16:
            raise error("invalid-argument", f"hop depth {hops} not in 1..16")
        c = self.cells.setdefault(cell, Cell(cell))
        if parent is not None and not c.hops.get(parent, hops) < hops:
            raise error("invalid-argument", f"parent {parent!r} is not a shallower meter of {cell}")
        c.meters.append(meter_id)
        c.hops[meter_id] = hops
        c.parent[meter_id] = parent
        c._children = c._roster = None
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

    def build_tree(self, seed: int = 1) -> None:
        """Give every meter a parent, replacing any: at depth 1 the collector; deeper, a
        meter of its cell drawn at random (seeded) at depth ``d - 1``, or at the nearest
        shallower depth that has meters (the frame then crosses the missing hops)."""
        rng = random.Random(seed)
        for cell in self.cells.values():
            by_depth: dict[int, list[str]] = {}
            for m in cell.meters:
                by_depth.setdefault(cell.hops[m], []).append(m)
            for m in cell.meters:
                d = cell.hops[m]
                up = next((by_depth[k] for k in range(d - 1, 0, -1) if k in by_depth), None)
                cell.parent[m] = rng.choice(up) if up else None
            cell._children = None

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

    # ------------------------------------------------------------------ gathered read-back
    def gather(self, meter_id: str, answer: Running, waits_s: tuple[float, ...], *,
               children_known: bool = False) -> None:
        """A meter's answer to a gathered read-back (``get_status(brief, gather_ms)``, with
        ``waits_s`` the request's per-depth waits in seconds): held by the meter's node,
        merged with its children's, and sent up the routing tree at its flush (a node deeper
        than the list flushes at once); the collector calls the uplink once per meter with
        ``encode(Running)`` and ``relayed=True``, as if each meter had answered with ``up``.
        Dropped while the meter is offline; an offline relay loses the entries it holds or
        receives. ``children_known`` (RPL storing mode): a node flushes as soon as all its
        children in the tree are in, else only at its deadline.
        """
        if not self.online[meter_id]:
            return
        cell = self._cell_of[meter_id]
        node = self._node(cell, meter_id)
        node.depth, node.cell_depth = cell.hops[meter_id], cell.depth  # the cell may have grown
        node.children = frozenset(short_id(c) for c in cell.children().get(meter_id, ())) \
            if children_known else None
        before = node.forwarded
        depth = cell.hops[meter_id]
        wait = waits_s[depth - 1] if depth <= len(waits_s) else 0.0
        self._send_up(cell, meter_id, node.own(answer, self.loop.now, wait))
        self.gather_stats.late += node.forwarded - before
        if node.flush_at is not None and not node.flushed:
            self.loop.at(node.flush_at, lambda: self._flush(cell, meter_id))

    def _node(self, cell: Cell, meter_id: str) -> GatherNode:
        node = cell.nodes.get(meter_id)
        if node is None:
            node = cell.nodes[meter_id] = GatherNode(meter_id, cell.hops[meter_id], cell.depth)
        return node

    def _flush(self, cell: Cell, meter_id: str) -> None:
        node = cell.nodes[meter_id]
        if not self.online[meter_id]:
            self.gather_stats.lost_offline += node.drop()
            return
        self._send_up(cell, meter_id, node.flush(self.loop.now))

    def _send_up(self, cell: Cell, meter_id: str, frames: list[Gathered]) -> None:
        for msg in frames:
            self.gather_stats.frames += 1
            data, up = encode(msg), cell.hops_up(meter_id)
            if self.relay_cost is not None:  # the head-end's budget pays for relay frames too
                self.relay_cost(cell.name, float(frame_bytes(len(data), self.profile) * up))
            self._enqueue(cell, _Frame(data, "upgrade", meter_id, True, up, self.loop.now,
                                       relay=True, to=cell.parent.get(meter_id)))

    def _relayed(self, cell: Cell, frame: _Frame, data: bytes) -> None:
        try:
            msg = decode(data)
        except AmiupError:
            self.gather_stats.corrupt += 1
            return
        if not isinstance(msg, Gathered):
            self.gather_stats.corrupt += 1
            return
        if frame.to is None:  # the collector: one ordinary answer per meter
            answers = split(msg, cell.roster())
            self.gather_stats.unresolved += sum(g.count for g in msg.groups) - len(answers)
            for mid, running in answers:
                self.gather_stats.answers += 1
                if self._uplink is not None:
                    self._uplink(mid, encode(running), True)
        elif not self.online[frame.to]:
            self.gather_stats.lost_offline += sum(g.count for g in msg.groups)
        else:
            node = self._node(cell, frame.to)
            before = node.forwarded
            self._send_up(cell, frame.to, node.child(msg, self.loop.now))
            self.gather_stats.late += node.forwarded - before

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
        if frame.relay:
            targets: list[str | None] = [frame.to]
        elif frame.uplink:
            targets = [None]
        elif frame.meter is None:
            targets = list(cell.meters)
        else:
            targets = [frame.meter]
        for target in targets:
            hops = frame.hops if target is None or frame.relay else cell.hops[target]
            if target is not None and not self.online[target]:
                if frame.relay:
                    self.gather_stats.lost_offline += _entries(frame.data)
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
            if frame.relay:
                self._relayed(self._cell_of[frame.meter or ""], frame, data)
            elif frame.background:
                self._read_arrived(frame, target)
            elif target is None:
                if self._uplink is not None and frame.meter is not None:
                    self._uplink(frame.meter, data, False)
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


def _entries(data: bytes) -> int:
    """Meters a (sound) gathered frame carries; 0 if it does not decode."""
    try:
        msg = decode(data)
    except AmiupError:
        return 0
    return sum(g.count for g in msg.groups) if isinstance(msg, Gathered) else 0
