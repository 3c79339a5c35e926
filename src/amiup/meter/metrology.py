"""Metrology: integrates the simulated load over the time it is given into energy registers.

The load is a periodic step profile (watts per interval), so its integral is exact and tests
can compare registers with the ground truth. Calibration is a gain applied by the metering
chip; it is part of the data no upgrade may touch (SM-7, MET-2). Measuring stops only for a
metrology activation (a bounded, logged gap, MET-3) or while the power is off (an outage,
also logged); each gap carries its length and the energy it missed, so
``register + sum(gap energy) == gain * integral(load)`` always holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from amiup.errors import error

DEFAULT_PROFILE: tuple[tuple[float, float], ...] = (
    (900.0, 350.0), (600.0, 2200.0), (1200.0, 800.0), (900.0, 120.0),
)
"""(seconds, watts) steps of one period: a household-like day compressed to an hour."""


@dataclass(frozen=True, slots=True)
class LoadProfile:
    """A periodic piecewise-constant load; ``energy_wh(t0, t1)`` is its exact integral."""

    steps: tuple[tuple[float, float], ...] = DEFAULT_PROFILE

    def __post_init__(self) -> None:
        if not self.steps or any(d <= 0 or w < 0 for d, w in self.steps):
            raise error("invalid-argument", "load steps need positive durations, watts >= 0")

    @property
    def period(self) -> float:
        return sum(d for d, _ in self.steps)

    def _cumulative_ws(self, t: float) -> float:
        """Watt-seconds consumed from time 0 to ``t``."""
        full, rest = divmod(t, self.period)
        total = full * sum(d * w for d, w in self.steps)
        for d, w in self.steps:
            take = min(d, rest)
            total += take * w
            rest -= take
            if rest <= 0:
                break
        return total

    def energy_wh(self, t0: float, t1: float) -> float:
        """Energy in Wh between ``t0`` and ``t1`` (0 if t1 <= t0)."""
        if t1 <= t0:
            return 0.0
        return (self._cumulative_ws(t1) - self._cumulative_ws(t0)) / 3600.0

    def watts(self, t: float) -> float:
        rest = t % self.period
        for d, w in self.steps:
            if rest < d:
                return w
            rest -= d
        return self.steps[-1][1]


@dataclass(frozen=True, slots=True)
class Gap:
    """A time metrology did not measure: why, how long, and the energy it missed."""

    start: float
    end: float
    reason: str  # "metrology-activation" | "outage"
    energy_wh: float


@dataclass
class Metrology:
    """Energy registers advanced in time; persisted by the meter as one record."""

    gain: float
    profile: LoadProfile
    last_time: float
    energy_wh: float = 0.0
    paused_until: float = 0.0
    gaps: list[Gap] = field(default_factory=list)
    gap_seconds: float = 0.0
    gap_energy_wh: float = 0.0

    def _log(self, gap: Gap) -> Gap:
        self.gaps = [*self.gaps[-63:], gap]
        self.gap_seconds += gap.end - gap.start
        self.gap_energy_wh += gap.energy_wh
        return gap

    def advance(self, now: float) -> None:
        """Integrate the load from the last update to ``now`` (skipping a paused interval)."""
        if now <= self.last_time:
            return
        start = max(self.last_time, min(self.paused_until, now))
        self.energy_wh += self.gain * self.profile.energy_wh(start, now)
        self.last_time = now

    def pause(self, now: float, seconds: float, reason: str) -> Gap:
        """Stop measuring for ``seconds`` from ``now`` (metrology activation); logged gap."""
        self.advance(now)
        start, end = max(now, self.paused_until), now + seconds
        if end <= start:  # already paused that long (e.g. a revert right after activation)
            return Gap(start, start, reason, 0.0)
        self.paused_until = end
        return self._log(Gap(start, end, reason, self.gain * self.profile.energy_wh(start, end)))

    def outage(self, now: float) -> Gap | None:
        """At boot: the time since the last saved update was not measured (power was off)."""
        if now <= self.last_time:
            return None
        start = max(self.last_time, min(self.paused_until, now))
        gap = Gap(start, now, "outage", self.gain * self.profile.energy_wh(start, now))
        self.last_time = now
        return self._log(gap)

    def to_dict(self) -> dict[str, Any]:
        """Registers only; the gain and profile live in the calibration record."""
        return {"t": self.last_time, "e": self.energy_wh, "p": self.paused_until,
                "g": [[g.start, g.end, g.reason, g.energy_wh] for g in self.gaps],
                "gs": self.gap_seconds, "ge": self.gap_energy_wh}

    @classmethod
    def from_dict(cls, d: dict[str, Any], gain: float, profile: LoadProfile) -> Metrology:
        return cls(gain, profile, float(d["t"]), float(d["e"]), float(d["p"]),
                   [Gap(float(a), float(b), str(r), float(e)) for a, b, r, e in d["g"]],
                   float(d["gs"]), float(d["ge"]))

    def copy(self) -> Metrology:
        return replace(self, gaps=list(self.gaps))


def profile_to_list(profile: LoadProfile) -> list[list[float]]:
    return [[d, w] for d, w in profile.steps]


def profile_from_list(raw: Any) -> LoadProfile:
    return LoadProfile(tuple((float(d), float(w)) for d, w in raw))
