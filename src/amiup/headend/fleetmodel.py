"""Aggregated, vectorized model of a fleet delivery: a million meters in seconds.

The detailed simulator (``amiup.headend.simrun``) runs one event per message and the real
meter agent; this model runs the SAME protocol (multicast announce, every block once plus
coded symbols, coded NACK rounds with the cost rules of ``amiup.headend.repair``, then a
multicast verify with the brief read-back right behind it (twice), gathered up the mesh,
and poll rounds for the meters not heard from, which also repair the meters the verify
found short; or per-meter unicast sessions)
as numpy arithmetic per cell: per meter it keeps counts (blocks lost, symbols heard, the
rank the random code falls short by), airtime is summed in bytes x hops, and a cell's
clock advances by airtime / (C_eff x upgrade share) plus round-trip waits. Per-meter state
is a few arrays (hop depth, cell, confirm time). A test checks it against the detailed
simulator on a small fleet (tests/unit/test_sim_fleetmodel.py).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from amiup.errors import error
from amiup.headend.readback import MARGIN as GATHER_MARGIN
from amiup.headend.repair import announce_repeats, coded_repeats, coded_round, still_short
from amiup.network.profiles import Profile
from amiup.network.sizes import MessageSizes
from amiup.wire.fec import MAX_PENDING
from amiup.wire.messages import MAX_GATHERED

Strategy = Literal["unicast", "multicast"]
TIMEOUT_S, BACKOFF, ROUND_WAIT_S = 10.0, 2.0, 0.3  # as SessionConfig / MulticastConfig (+ RTT)
MC_TIMEOUT_S = 3.0  # MulticastConfig.session: follow-up sessions of a cell (plus their drain)
POLL_ROUNDS = 5  # MulticastConfig.poll_rounds: named read-backs before unicast sessions
VERIFY_REPEATS = 2  # MulticastConfig.verify_repeats: copies of the verify + read-back
POLL_REPAIR_MAX = 8  # MulticastConfig.poll_repair_max: a short meter repaired in a poll
FArr = npt.NDArray[np.float64]
IArr = npt.NDArray[np.int64]
BArr = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class FleetConfig:
    """One simulated campaign: fleet size, network, strategy, payload and impairments."""

    meters: int
    profile: Profile
    strategy: Strategy = "multicast"
    image_size: int = 1 << 20
    delta: bool = False
    delta_ratio: float = 0.10
    loss: float | None = None
    upgrade_share: float = 1.0
    offline: float = 0.0  # share of meters that drop mid-transfer and come back later
    lost: float = 0.0  # share of meters that never come back
    back_within_s: float = 3600.0
    deadline_s: float = 7 * 86400.0
    window: int = 16
    max_rounds: int = 8
    seed: int = 1
    hops: tuple[int, ...] | None = None  # explicit hop depth per meter (else by profile)
    order_bytes: int = 300
    header_bytes: int = 750
    repeats: int | None = None  # coded symbols after the blocks (None: repair.coded_repeats)
    gather: bool = True  # multicast read-back gathered up the mesh (amiup.network.gather)

    def __post_init__(self) -> None:
        if self.meters < 1:
            raise error("invalid-argument", "meters must be at least 1")
        if self.strategy not in ("unicast", "multicast"):
            raise error("invalid-argument", f"unknown strategy {self.strategy!r}")
        for name in ("loss", "offline", "lost"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value < 1.0:
                raise error("invalid-argument", f"{name} must be in [0, 1)")
        if not 0.0 < self.upgrade_share <= 1.0:
            raise error("invalid-argument", "upgrade share must be in (0, 1]")

    @property
    def block_loss(self) -> float:
        return self.profile.default_loss if self.loss is None else self.loss

    @property
    def payload_size(self) -> int:
        return max(1, round(self.image_size * self.delta_ratio)) if self.delta else self.image_size

    @property
    def effective_strategy(self) -> Strategy:
        """Cellular has no usable multicast: it always runs unicast."""
        return self.strategy if self.profile.multicast else "unicast"


@dataclass
class FleetResult:
    """What a campaign took: confirmations over virtual time, airtime, floor, failures."""

    config: FleetConfig
    confirm_s: FArr  # per meter, inf when not confirmed
    airtime_by_cell: FArr  # bytes x hops per cell
    floor_s: float
    wall_s: float
    failed_by_code: dict[str, int] = field(default_factory=dict)

    @property
    def floor_bytes(self) -> float:
        """The floor as airtime (bytes x hops) of the slowest cell: ``floor_s x C_eff x share``."""
        cfg = self.config
        return self.floor_s * cfg.profile.c_eff_bps * cfg.upgrade_share / 8.0

    @property
    def confirmed(self) -> int:
        return int(np.isfinite(self.confirm_s).sum())

    def t_at(self, share: float) -> float | None:
        """Virtual seconds until ``share`` of all meters were confirmed (None if never)."""
        need = max(1, math.ceil(share * len(self.confirm_s)))
        if self.confirmed < need:
            return None
        return float(np.partition(self.confirm_s, need - 1)[need - 1])

    def to_dict(self) -> dict[str, Any]:
        """The JSON summary of ``amiup sim --json``."""
        cfg = self.config
        t100 = self.t_at(1.0)
        air = float(self.airtime_by_cell.sum())
        return {
            "profile": cfg.profile.name,
            "strategy": cfg.effective_strategy,
            "delta": cfg.delta,
            "loss": cfg.block_loss,
            "meters": cfg.meters,
            "confirmed": self.confirmed,
            "failed_by_code": dict(self.failed_by_code),
            "cells": len(self.airtime_by_cell),
            "payload_bytes": cfg.payload_size,
            "airtime_bytes": round(air),
            "airtime_bytes_per_cell_mean": round(air / max(1, len(self.airtime_by_cell))),
            "airtime_bytes_per_cell_max": round(float(self.airtime_by_cell.max())),
            "airtime_per_payload_meter": air / (cfg.payload_size * max(1, self.confirmed)),
            "floor_s": self.floor_s,
            "t50_s": self.t_at(0.50),
            "t95_s": self.t_at(0.95),
            "t99_s": self.t_at(0.99),
            "t100_s": t100,
            "ratio_to_floor": (t100 / self.floor_s) if t100 and self.floor_s else None,
            "t99_ratio_to_floor": (t99 / self.floor_s) if (t99 := self.t_at(0.99)) and self.floor_s else None,
            "airtime_ratio_to_floor": (float(self.airtime_by_cell.max()) / self.floor_bytes
                                       if self.floor_s else None),
            "wall_s": self.wall_s,
        }


def topology(cfg: FleetConfig, rng: np.random.Generator) -> tuple[IArr, npt.NDArray[np.int8]]:
    """Cell index and hop depth of every meter (cells filled in order, hops by profile)."""
    per = cfg.profile.meters_per_cell
    cells = np.arange(cfg.meters, dtype=np.int64) // per
    if cfg.hops is not None:
        if len(cfg.hops) != cfg.meters:
            raise error("invalid-argument", "one hop depth per meter")
        return cells, np.asarray(cfg.hops, dtype=np.int8)
    w = np.asarray(cfg.profile.hop_weights, dtype=np.float64)
    hops = rng.choice(np.arange(1, len(w) + 1, dtype=np.int8), size=cfg.meters, p=w / w.sum())
    return cells, hops


def floor_seconds(cfg: FleetConfig, cells: IArr, hops: npt.NDArray[np.int8]) -> float:
    """architecture.md's floor, loss-adjusted: the slowest cell's airtime at C_eff x share.

    unicast: sum_i h_i * P * (1+o) / C; multicast: H_cell * P * (1+o) / C; both divided by
    (1 - loss), the least any scheme without coding spends to get P through an erasure
    channel. Cells work in parallel, so the fleet floor is the largest cell's floor.
    """
    prof = cfg.profile
    cap = prof.c_eff_bps * cfg.upgrade_share / 8.0
    unit = cfg.payload_size * (1.0 + prof.overhead) / (1.0 - cfg.block_loss) / cap
    if cfg.effective_strategy == "multicast":
        n_cells = int(cells[-1]) + 1
        cell_max = np.zeros(n_cells, dtype=np.int64)
        np.maximum.at(cell_max, cells, hops.astype(np.int64))
        return float(cell_max.max()) * unit
    hop_sum = np.bincount(cells, weights=hops.astype(np.float64))
    return float(hop_sum.max()) * unit


def _sparse_misses(rng: np.random.Generator, meters: IArr, blocks: int, p: float) -> IArr:
    """Sorted unique keys ``meter * blocks + block`` of blocks lost by ``meters``."""
    if p <= 0.0 or len(meters) == 0 or blocks == 0:
        return np.zeros(0, dtype=np.int64)
    # draws with replacement at rate -ln(1-p): each block is then lost with probability p
    counts = rng.binomial(blocks, min(1.0, -math.log1p(-p)), size=len(meters))
    rows = np.repeat(meters.astype(np.int64), counts)
    cols = rng.integers(0, blocks, size=int(counts.sum()))
    return _unique(rows * blocks + cols)


def _unique(keys: IArr) -> IArr:
    """Sorted unique values (a plain sort: faster here than numpy's hashing unique)."""
    keys = np.sort(keys)
    return keys[np.r_[True, keys[1:] != keys[:-1]]] if len(keys) else keys


def _exchange(
    rng: np.random.Generator, hops: FArr, down: float, up: float, p: float
) -> tuple[FArr, FArr]:
    """Airtime (bytes x hops) and attempts of one request/response per meter, retried."""
    if len(hops) == 0:
        return np.zeros(0), np.zeros(0)
    attempts = rng.geometric((1.0 - p) ** 2, size=len(hops)).astype(np.float64) if p else np.ones(len(hops))
    air = hops * (attempts * down + (attempts - 1.0) * (1.0 - p) * up * 0.5 + up)
    return air, attempts


def _waits(attempts: FArr, timeout_s: float = TIMEOUT_S, backoff: float = BACKOFF) -> FArr:
    """Time lost to timeouts before the last attempt: timeout x (1 + b + b^2 ...)."""
    fails = np.maximum(attempts - 1.0, 0.0)
    return np.asarray(timeout_s * (backoff**fails - 1.0) / (backoff - 1.0), dtype=np.float64)


def _unicast_airtime(
    cfg: FleetConfig, sizes: MessageSizes, blocks: int, hops: FArr, missing: IArr, rng: np.random.Generator,
    timeout_s: float = TIMEOUT_S,
) -> tuple[FArr, FArr]:
    """Per-meter airtime and timeout waits of a unicast session sending ``missing`` blocks."""
    p = cfg.block_loss
    offer, a1 = _exchange(rng, hops, sizes.offer, sizes.accept, p)
    m = missing.astype(np.int64)
    extra = rng.negative_binomial(np.maximum(m, 1), 1.0 - p) * (m > 0) if p else np.zeros(len(m))
    sent = m + extra
    # one query per window sent, and one more per repair pass
    windows = np.ceil(sent / cfg.window) + (extra > 0)
    data = hops * sent * sizes.block
    q_ok = (1.0 - p) ** 2
    queries = hops * windows * (sizes.query + sizes.missing) / max(1e-9, q_ok)
    q_fail = rng.binomial(np.maximum(windows, 0).astype(np.int64) * 4, 1.0 - q_ok) / 4.0 if p else 0.0
    verify, a2 = _exchange(rng, hops, sizes.verify, sizes.verified, p)
    read, a3 = _exchange(rng, hops, sizes.get_status, sizes.status, p)
    wait = _waits(a1, timeout_s) + _waits(a2, timeout_s) + _waits(a3, timeout_s) + timeout_s * q_fail
    return np.asarray(offer + data + queries + verify + read, dtype=np.float64), wait


def _grouped_cumsum(values: FArr, groups: IArr) -> FArr:
    """Cumulative sum of ``values`` restarting at each new group (groups sorted)."""
    total = np.cumsum(values)
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    offsets = np.repeat(total[starts] - values[starts], np.diff(np.r_[starts, len(values)]))
    return np.asarray(total - offsets, dtype=np.float64)


def simulate(cfg: FleetConfig, progress: Callable[[int, int], None] | None = None) -> FleetResult:
    """Run the campaign model; deterministic for a given ``cfg.seed``.

    ``progress(done, total)`` is called as cells complete (for a live display).
    """
    started = time.perf_counter()
    rng = np.random.default_rng(cfg.seed)
    prof = cfg.profile
    cells, hops8 = topology(cfg, rng)
    n_cells = int(cells[-1]) + 1
    blocks = -(-cfg.payload_size // prof.block_size)
    sizes = MessageSizes.for_transfer(prof, blocks, order_bytes=cfg.order_bytes,
                                      header_bytes=cfg.header_bytes)
    cap = prof.c_eff_bps * cfg.upgrade_share / 8.0
    hops = hops8.astype(np.float64)
    confirm = np.full(cfg.meters, np.inf)
    air_cell = np.zeros(n_cells)
    failed: dict[str, int] = {}

    # who drops mid-transfer (comes back after a while) and who is gone for good
    fate = rng.random(cfg.meters)
    gone = fate < cfg.lost
    drops = (~gone) & (fate < cfg.lost + cfg.offline)
    back_at = rng.uniform(0.0, cfg.back_within_s, size=cfg.meters)

    if cfg.effective_strategy == "multicast":
        for c in range(n_cells):
            lo, hi = c * prof.meters_per_cell, min(cfg.meters, (c + 1) * prof.meters_per_cell)
            air_cell[c] = _multicast_cell(
                cfg, sizes, blocks, hops[lo:hi], gone[lo:hi], drops[lo:hi], back_at[lo:hi],
                cap, rng, confirm[lo:hi],
            )
            if progress is not None and (c % 50 == 49 or c == n_cells - 1):
                progress(c + 1, n_cells)
    else:
        air_cell[:] = _unicast_fleet(cfg, sizes, blocks, cells, hops, gone, drops, back_at, cap, rng, confirm)
        if progress is not None:
            progress(n_cells, n_cells)

    late = confirm > cfg.deadline_s
    confirm[late] = np.inf
    if gone.any() or late.any():
        failed["unreachable"] = int((gone | late).sum())
    floor = floor_seconds(cfg, cells, hops8)
    return FleetResult(cfg, confirm, air_cell, floor, time.perf_counter() - started, failed)


def _unicast_fleet(
    cfg: FleetConfig, sizes: MessageSizes, blocks: int, cells: IArr, hops: FArr, gone: BArr,
    drops: BArr, back_at: FArr, cap: float, rng: np.random.Generator, confirm: FArr,
) -> FArr:
    """Unicast sessions, served one after the other on each cell's shared channel."""
    prof = cfg.profile
    n = cfg.meters
    missing = np.full(n, blocks, dtype=np.int64)
    air, wait = _unicast_airtime(cfg, sizes, blocks, hops, missing, rng)
    # a meter that drops mid-transfer costs a partial session now, the rest (resume) later
    got = rng.integers(0, blocks + 1, size=n)
    resume, _ = _unicast_airtime(cfg, sizes, blocks, hops, np.where(drops, blocks - got, 0), rng)
    air = np.where(drops, air * (got / max(1, blocks)) + resume, air)
    air = np.where(gone, hops * sizes.offer * 4, air)  # offers that are never answered
    rtt = 2.0 * hops * prof.hop_latency_s
    served = ~gone & ~drops
    if prof.shared_cell:
        order = np.lexsort((rng.random(n), drops, cells))  # per cell: online first, random order
        fin = np.empty(n)
        fin[order] = _grouped_cumsum(np.where(drops, air - resume, air)[order], cells[order]) / cap
        cell_end = np.zeros(int(cells[-1]) + 1)
        np.maximum.at(cell_end, cells, fin)
        confirm[served] = (fin + rtt * 8 + wait)[served]
        later = np.maximum(back_at, cell_end[cells]) + resume / cap + rtt * 8 + wait
        confirm[drops] = later[drops]
    else:
        confirm[served] = (air / cap + rtt * 8 + wait)[served]
        confirm[drops] = (back_at + air / cap + rtt * 8 + wait)[drops]
    return np.asarray(np.bincount(cells, weights=air, minlength=int(cells[-1]) + 1), dtype=np.float64)


def _multicast_cell(
    cfg: FleetConfig, sizes: MessageSizes, blocks: int, h: FArr, gone: BArr, drops: BArr,
    back_at: FArr, cap: float, rng: np.random.Generator, confirm: FArr,
) -> float:
    """One cell: announce, data + coded symbols, coded NACK rounds, verify, brief read-back."""
    prof = cfg.profile
    p = cfg.block_loss
    n = len(h)
    big_h = float(h.max())
    mean_h = float(h.mean())
    rtt = 2.0 * big_h * prof.hop_latency_s
    air = 0.0
    clock = 0.0

    def spend(a: float) -> None:
        nonlocal air, clock
        air += a
        clock += a / cap

    # announce: one unicast offer to a pilot meter gives the transfer id, then the multicast
    # offer k times; meters accept silently and refuse loudly (NACK style)
    spend(sizes.offer * h[0] + sizes.accept * h[0])
    member = np.zeros(n, dtype=bool)
    for _ in range(announce_repeats(max(p, 0.002), n)):  # back to back
        spend(sizes.offer * big_h)
        member |= ~gone & (rng.random(n) >= p)
    clock += rtt
    # data round: every block once, then R coded symbols (the cost rule of repair.coded_repeats).
    # Per meter only counts matter: blocks lost, symbols heard, and the rank the random code
    # falls short by (0 with probability ~255/256 per symbol held)
    round_air = (rtt + ROUND_WAIT_S) * cap + sizes.query * big_h  # as CellMulticast._round_air
    active = member & ~drops
    r = cfg.repeats if cfg.repeats is not None else coded_repeats(
        p, blocks, int(active.sum()), sizes.coded * big_h, round_air, mean_h * sizes.missing)
    spend(blocks * sizes.block * big_h + r * sizes.coded * big_h)
    lost = rng.binomial(blocks, p, size=n) if p else np.zeros(n, dtype=np.int64)
    need = np.maximum(0, lost + _deficit(rng, n) - np.minimum(rng.binomial(r, 1.0 - p, size=n), MAX_PENDING))
    need = np.where(lost > 0, need, 0)
    # droppers hold the blocks before their drop point (minus losses): only counts matter
    cut = rng.integers(0, blocks + 1, size=n)
    drop_left = np.where(drops & member, blocks - cut + rng.binomial(cut, p), blocks)
    # NACK rounds: multicast query; meters still short answer with bitmap and symbols held
    sym_round = round_air / sizes.coded
    sym_answer = sizes.missing / sizes.coded
    for _ in range(cfg.max_rounds):
        spend(sizes.query * big_h)
        # a meter that missed the announce answers the query "unknown transfer" and gets
        # the offer by unicast: it joins with every block missing (too many for the code)
        join = ~gone & ~drops & ~member & (rng.random(n) >= p)
        spend(float(h[join].sum()) * (sizes.verified + sizes.offer + sizes.accept))
        need[join] = blocks
        member |= join
        active |= join
        heard = active & ~join & (rng.random(n) >= p)
        nack = heard & (need > 0)
        spend(float(h[nack].sum()) * sizes.missing)
        nack &= rng.random(n) >= p
        clock += rtt + ROUND_WAIT_S
        if not nack.any():
            break
        # coded repair: c symbols by multicast for the many; plain blocks (or symbols) by
        # unicast for the few and for meters missing more than they can decode
        codable = nack & (need <= MAX_PENDING)
        idx = np.flatnonzero(codable)
        c, uni = coded_round(need[idx], h[idx], big_h, p, sym_round, sym_answer)
        spend(c * sizes.coded * big_h)
        settled = not (nack & ~codable).any() and not join.any() and still_short(need[idx][~uni], c, p) < 0.5
        short = active & (need > 0)
        need[short] = np.maximum(0, need[short] - rng.binomial(c, 1.0 - p, size=int(short.sum())))
        by_uni = np.zeros(n, dtype=bool)
        by_uni[idx[uni]] = True
        by_uni |= (nack & ~codable) | join  # a joiner's accept lists every block: plain, by unicast
        spend(_unicast_repair(rng, need, by_uni, h, p, sym_round, sym_answer, sizes.block))
        if settled:  # the margins make a meter still short unlikely: verify, don't ask again
            break
    # multicast verify and, right behind it, the brief read-back of the running version
    # (UMS-8), gathered up the mesh: failures answer the verify, every meter the read-back
    idx = np.flatnonzero(active)
    hi_ = h[idx]
    spend(VERIFY_REPEATS * (sizes.verify + sizes.get_brief) * big_h)
    left = need[idx].copy()
    miss = p**VERIFY_REPEATS  # a meter misses every copy of the verify (or the read-back)
    heard_v = rng.random(len(idx)) >= miss
    verified = heard_v & (left == 0)
    heard = rng.random(len(idx)) >= miss
    # meters still short answer the verify with missing; those a few symbols fix are
    # repaired in the next poll round, the others resumed by a unicast session
    short = heard_v & (left > 0) & (rng.random(len(idx)) >= p)
    spend(float(hi_[short].sum()) * sizes.missing)
    if cfg.gather and big_h > 1:  # answers merged up the routing tree, one frame per relay
        own = np.zeros(n, dtype=bool)
        own[idx[heard]] = True
        reached, g_air = _gather(rng, h, own, ~gone & ~drops, p, sizes, prof)
        spend(g_air)
        # the per-depth waits of readback.gather_waits: their margin and hop latencies
        clock += (GATHER_MARGIN - 1.0) * g_air / cap + 3.0 * prof.hop_latency_s * (big_h - 1)
        answered = reached[idx] & verified
    else:
        spend(float(hi_[heard].sum()) * sizes.running)
        answered = heard & (rng.random(len(idx)) >= p) & verified
    clock += rtt + ROUND_WAIT_S
    confirm[idx[answered]] = clock
    # poll rounds: the verify again and a read-back naming the meters not heard from (they
    # answer directly); the few still silent after them, and the meters still short, get
    # unicast sessions
    for _ in range(POLL_ROUNDS):
        fix = short & (left <= POLL_REPAIR_MAX)
        todo = ~answered & ((left == 0) | fix)
        if not todo.any():
            break
        if fix.any():  # as CellMulticast._coded_repair: multicast c, unicast for the few
            f = np.flatnonzero(fix)
            c, uni = coded_round(left[f], hi_[f], big_h, p, sym_round, sym_answer)
            spend(c * sizes.coded * big_h)
            left[f] = np.maximum(0, left[f] - rng.binomial(c, 1.0 - p, size=len(f)))
            by_uni = np.zeros(len(idx), dtype=bool)
            by_uni[f[uni]] = True
            spend(_unicast_repair(rng, left, by_uni, hi_, p, sym_round, sym_answer, sizes.coded))
        spend((sizes.verify + sizes.get_brief + sizes.gather_per_meter * int(todo.sum())) * big_h)
        heard_v = todo & (rng.random(len(idx)) >= p)
        verified |= heard_v & (left == 0)
        heard = todo & (rng.random(len(idx)) >= p)
        back = float(hi_[heard].sum()) * sizes.running
        spend(back)
        got = heard & verified & (rng.random(len(idx)) >= p)
        short = heard_v & (left > 0) & (rng.random(len(idx)) >= p)
        spend(float(hi_[short].sum()) * sizes.missing)
        clock += rtt + ROUND_WAIT_S
        confirm[idx[got]] = clock
        answered |= got
    resume, w_r = _unicast_airtime(cfg, sizes, blocks, hi_, left, rng, MC_TIMEOUT_S)
    fix_v, a_v = _exchange(rng, hi_, sizes.verify, sizes.verified, p)
    fix_s, a_s = _exchange(rng, hi_, sizes.get_brief, sizes.running, p)
    read_only = (left == 0) & verified
    per = np.where(left > 0, resume, fix_s + np.where(read_only, 0.0, fix_v))
    wait = np.where(left > 0, w_r,
                    _waits(a_s, MC_TIMEOUT_S) + np.where(read_only, 0.0, _waits(a_v, MC_TIMEOUT_S)))
    order = rng.permutation(len(idx))
    order = order[~answered[order]]
    confirm[idx[order]] = clock + np.cumsum(per[order]) / cap + rtt * 2 + wait[order]
    spend(float(per[order].sum()))
    # droppers and meters that missed the announce: unicast resume when they are back
    late = np.flatnonzero(~gone & ~active)
    left = drop_left[late]
    per, w_l = _unicast_airtime(cfg, sizes, blocks, h[late], left, rng)
    start = np.where(drops[late], np.maximum(back_at[late], clock), clock)
    order = np.argsort(start)
    t = 0.0
    for j in order:  # few meters: serve in order of return on the shared channel
        t = max(t, float(start[j])) + float(per[j]) / cap
        confirm[late[j]] = t + rtt * 3 + float(w_l[j])
    air += float(per.sum())
    air += float(h[gone].sum()) * sizes.offer * 3
    return air


def _unicast_repair(rng: np.random.Generator, need: IArr, to: BArr, h: FArr, p: float,
                    sym_round: float, sym_answer: float, unit: int) -> float:
    """Need plus a margin (``repair.coded_repeats``) by unicast to each meter of ``to``
    still short; lowers ``need`` by what arrives and returns the airtime."""
    air = 0.0
    for i in np.flatnonzero(to & (need > 0)):
        k = int(need[i]) + coded_repeats(p, int(need[i]), 1, 1.0, sym_round, sym_answer)
        air += float(h[i]) * k * unit
        need[i] = max(0, int(need[i]) - int(rng.binomial(k, 1.0 - p)))
    return air


def _tree(rng: np.random.Generator, h: FArr) -> tuple[IArr, IArr]:
    """A routing tree for one cell: each meter's parent (-1: the collector) and hops to it.

    As ``SimNetwork.build_tree``: a parent at random among the meters one level up (or the
    nearest shallower level that has meters).
    """
    depth = h.astype(np.int64)
    parent = np.full(len(h), -1, dtype=np.int64)
    up = depth.copy()
    for d in range(2, int(depth.max(initial=1)) + 1):
        here = np.flatnonzero(depth == d)
        for above in range(d - 1, 0, -1):
            cand = np.flatnonzero(depth == above)
            if len(cand):
                parent[here] = cand[rng.integers(0, len(cand), size=len(here))]
                up[here] = d - above
                break
    return parent, up


def _gather(rng: np.random.Generator, h: FArr, own: BArr, online: BArr, p: float,
            sizes: MessageSizes, prof: Profile) -> tuple[BArr, float]:
    """Gathered read-back of one cell: which answers reach the collector, and the airtime.

    Every online relay with answers in its subtree sends one frame (split at the frame cap)
    to its parent; a lost frame loses the answers it carried, an offline relay those of its
    subtree (the head-end polls them by unicast afterwards).
    """
    parent, up = _tree(rng, h)
    depth = h.astype(np.int64)
    sent = online & (rng.random(len(h)) >= p)
    entries = (own & online).astype(np.int64)
    top = int(depth.max(initial=1))
    for d in range(top, 1, -1):
        lvl = np.flatnonzero((depth == d) & (parent >= 0) & sent)
        np.add.at(entries, parent[lvl], entries[lvl])
    ok = sent.copy()
    for d in range(2, top + 1):
        lvl = np.flatnonzero((depth == d) & (parent >= 0))
        ok[lvl] &= ok[parent[lvl]]
    talk = online & (entries > 0)
    e = entries[talk]
    frames = -(-e // MAX_GATHERED)
    length = frames * (sizes.gather_frame - prof.frame_overhead) + (e - frames) * sizes.gather_per_meter
    mtu = prof.block_size + 32
    on_air = length + np.maximum(1, -(-length // mtu)) * prof.frame_overhead
    return own & ok, float((on_air * up[talk]).sum())


def _deficit(rng: np.random.Generator, n: int) -> IArr:
    """Symbols a meter needs beyond its missing count: the rank the GF(2^8) code falls short by."""
    return np.asarray(rng.geometric(1.0 - 1.0 / 256.0, size=n) - 1, dtype=np.int64)
