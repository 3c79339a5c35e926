"""Wave planning: a pilot, then staged waves, each spread across cells so none is swamped.

A campaign's plan is ``{"pilot": 10, "steps": ["10%", "50%", "100%"]}``: a pilot wave of
10 meters (a count, or ``"1%"``), then waves that bring the campaign *up to* each step
(cumulative: a percentage of the target, or a meter count). Whatever the steps leave out
forms one last wave, so every target meter is in exactly one wave.

Why per cell (a collector / access point): airtime is shared inside a cell, and cells work in
parallel. A wave of 10% takes about 10% of *every* cell (proportional allocation with largest
remainders, exact totals), never 100% of a few; a 10-meter pilot lands in 10 different cells
(the largest ones). Within a wave, meters are ordered round-robin across cells (rank inside
the cell first), and the scheduler claims work in that order, so concurrent deliveries are
spread over cells too.

Pure and vectorized (numpy): planning a million meters takes well under a second.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from amiup.errors import error

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class WaveSpec:
    """The validated wave plan: a pilot size and cumulative steps (ints or fractions)."""

    pilot: int | float = 0  # meters, or a fraction of the target when float
    steps: tuple[int | float, ...] = ()  # cumulative: meters (int) or fraction (float)

    @classmethod
    def from_dict(cls, data: dict[str, object] | None) -> WaveSpec:
        data = data or {}
        raw_steps = data.get("steps") or []
        if not isinstance(raw_steps, list | tuple):
            raise error("invalid-argument", "waves: steps must be a list")
        return cls(_size(data.get("pilot", 0)), tuple(_size(s) for s in raw_steps))

    def to_dict(self) -> dict[str, object]:
        return {"pilot": _show(self.pilot), "steps": [_show(s) for s in self.steps]}

    def boundaries(self, total: int) -> list[tuple[str, int]]:
        """Cumulative meter counts ending each non-empty wave, with wave names."""
        out: list[tuple[str, int]] = []
        reached = 0

        def add(name: str, upto: int) -> None:
            nonlocal reached
            upto = min(total, upto)
            if upto > reached:
                out.append((name, upto))
                reached = upto

        add("pilot", _count(self.pilot, total))
        for i, step in enumerate(self.steps, start=1):
            add(f"wave {i}", _count(step, total))
        add(f"wave {len(self.steps) + 1}", total)
        return out


def _size(value: object) -> int | float:
    if isinstance(value, bool):
        raise error("invalid-argument", "waves: a size is a count or a percentage")
    if isinstance(value, int):
        if value < 0:
            raise error("invalid-argument", "waves: a count cannot be negative")
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            if text.endswith("%"):
                pct = float(text[:-1])
                if not 0 <= pct <= 100:
                    raise ValueError
                return pct / 100.0
            return _size(int(text))
        except ValueError:
            raise error("invalid-argument", f"waves: bad size {value!r}") from None
    raise error("invalid-argument", f"waves: bad size {value!r} (want 10 or '10%')")


def _show(size: int | float) -> int | str:
    return size if isinstance(size, int) else f"{size * 100:g}%"


def _count(size: int | float, total: int) -> int:
    if isinstance(size, int):
        return size
    return round(size * total) if size < 1 else total


@dataclass(frozen=True, slots=True)
class WavePlan:
    """Where each target meter goes: ``wave[i]`` for target i; ``order`` is claim order."""

    names: tuple[str, ...]
    sizes: tuple[int, ...]
    wave: IntArray  # wave number of each target, aligned with the input
    order: IntArray  # permutation of target indices: by wave, then round-robin over cells

    def per_cell(self, cells: Sequence[str] | npt.NDArray[np.object_]) -> list[dict[str, int]]:
        """For each wave, how many meters each cell contributes (for reports and tests)."""
        out: list[dict[str, int]] = [{} for _ in self.names]
        for w, c in zip(self.wave.tolist(), list(cells), strict=True):
            out[w][c] = out[w].get(c, 0) + 1
        return out


def plan_waves(cells: Sequence[str] | npt.NDArray[Any], spec: WaveSpec) -> WavePlan:
    """Split targets (given by their cells, in a stable order) into waves per ``spec``.

    ``cells`` holds cell names, or integer cell codes (0..k-1), which skips the string sort.
    """
    n = len(cells)
    bounds = spec.boundaries(n)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return WavePlan((), (), empty, empty)
    if isinstance(cells, np.ndarray) and cells.dtype.kind in "iu":
        code = cells.astype(np.int64)
    else:
        _, inverse = np.unique(np.asarray(cells, dtype=object), return_inverse=True)
        code = inverse.astype(np.int64)
    sizes_c = np.bincount(code).astype(np.int64)  # meters per cell
    # rank of each target inside its cell (stable: input order)
    by_cell = np.argsort(code, kind="stable")
    starts = np.concatenate(([0], np.cumsum(sizes_c)[:-1]))
    rank = np.empty(n, dtype=np.int64)
    rank[by_cell] = np.arange(n, dtype=np.int64) - np.repeat(starts, sizes_c)

    # per-cell cumulative quotas, wave by wave, proportional to what each cell has left
    taken = np.zeros_like(sizes_c)
    cum_quota = []
    prev = 0
    for _, upto in bounds:
        taken = taken + _allocate(upto - prev, sizes_c - taken)
        cum_quota.append(taken.copy())
        prev = upto
    quotas = np.stack(cum_quota)  # (waves, cells)
    # wave of a target = number of waves whose cumulative quota in its cell is <= its rank
    wave = (quotas[:, code] <= rank[None, :]).sum(axis=0).astype(np.int64)
    order = np.lexsort((code, rank, wave)).astype(np.int64)
    sizes = tuple(int(x) for x in np.bincount(wave, minlength=len(bounds)))
    return WavePlan(tuple(name for name, _ in bounds), sizes, wave, order)


def _allocate(amount: int, room: IntArray) -> IntArray:
    """Split ``amount`` over cells proportionally to ``room`` (largest remainder, exact)."""
    total = int(room.sum())
    if amount >= total:
        return room.copy()
    if amount <= 0:
        return np.zeros_like(room)
    exact = room * (amount / total)
    base = np.minimum(np.floor(exact).astype(np.int64), room)
    short = amount - int(base.sum())
    if short > 0:
        frac = np.where(base < room, exact - base, -1.0)
        # largest remainder first; ties go to the larger cell, then the lower cell index
        pick = np.lexsort((np.arange(len(room)), -room, -frac))[:short]
        base[pick] += 1
    return base
