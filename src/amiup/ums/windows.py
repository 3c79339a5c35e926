"""Delivery windows and blackout dates in the utility's time zone: when may work go out.

Utilities deliver at night and never on some days (storms, billing runs, holidays), in local
time: a window "22:00-05:00 Mon-Fri, Europe/Paris" must follow daylight saving time. So a
:class:`Calendar` holds local rules plus a zoneinfo name, and every question is asked with a
UTC instant (unix seconds) passed in; nothing here reads a clock (sans-I/O).

A window that ends at or before its start crosses midnight; its weekdays name the day it
*starts*. A blackout date blocks its whole local day, even inside a window. A calendar with
no windows is always open except on blackout dates.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from amiup.errors import error

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPEC = re.compile(
    r"^\s*(?:(?P<days>[a-z]{3}(?:-[a-z]{3})?(?:,[a-z]{3}(?:-[a-z]{3})?)*)\s+)?"
    r"(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})\s*$"
)
_HORIZON_DAYS = 400  # how far next_open() looks before it says "never"


@dataclass(frozen=True, slots=True)
class Window:
    """A daily local-time window on some weekdays (0 = Monday)."""

    start: time
    end: time
    days: frozenset[int] = frozenset(range(7))

    def __post_init__(self) -> None:
        if not self.days or any(d not in range(7) for d in self.days):
            raise error("invalid-argument", "window weekdays must be 0..6 (Monday = 0)")

    @property
    def crosses_midnight(self) -> bool:
        return self.end <= self.start

    @classmethod
    def parse(cls, spec: str) -> Window:
        """Parse ``"22:00-05:00"`` or ``"mon-fri 01:00-04:30"`` or ``"sat,sun 00:00-06:00"``."""
        m = _SPEC.match(spec.lower())
        if m is None:
            raise error("invalid-argument", f"bad window {spec!r} (want [days] HH:MM-HH:MM)")
        days: set[int] = set()
        for part in (m["days"] or "mon-sun").split(","):
            lo, _, hi = part.partition("-")
            if lo not in _DAYS or (hi and hi not in _DAYS):
                raise error("invalid-argument", f"bad weekday in window {spec!r}")
            a, b = _DAYS.index(lo), _DAYS.index(hi or lo)
            days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
        return cls(_hhmm(m["start"], spec), _hhmm(m["end"], spec), frozenset(days))

    @classmethod
    def from_json(cls, value: object) -> Window:
        """From a campaign's stored form ``{"days": [0..6], "start": "22:00", "end": "05:00"}``
        or from a text spec."""
        if isinstance(value, str):
            return cls.parse(value)
        if not isinstance(value, dict):
            raise error("invalid-argument", f"bad delivery window {value!r}")
        days = value.get("days", list(range(7)))
        if not isinstance(days, list) or not all(isinstance(d, int) for d in days):
            raise error("invalid-argument", "window days must be a list of 0..6")
        spec = f"{value.get('start', '')}-{value.get('end', '')}"
        base = cls.parse(spec)
        return cls(base.start, base.end, frozenset(days))

    def to_json(self) -> dict[str, object]:
        """The campaign's stored form."""
        return {"days": sorted(self.days), "start": f"{self.start:%H:%M}",
                "end": f"{self.end:%H:%M}"}

    def to_spec(self) -> str:
        """The inverse of :meth:`parse` (days listed one by one)."""
        days = ",".join(_DAYS[d] for d in sorted(self.days))
        return f"{days} {self.start:%H:%M}-{self.end:%H:%M}"

    def contains(self, local: datetime) -> bool:
        """Is the naive local wall-clock time ``local`` inside this window?"""
        t, wd = local.time(), local.weekday()
        if not self.crosses_midnight:
            return wd in self.days and self.start <= t < self.end
        if t >= self.start:
            return wd in self.days
        return t < self.end and (wd - 1) % 7 in self.days


def _hhmm(text: str, spec: str) -> time:
    hh, mm = (int(x) for x in text.split(":"))
    if hh > 24 or mm > 59 or (hh == 24 and mm):
        raise error("invalid-argument", f"bad time in window {spec!r}")
    return time(0, 0) if hh == 24 else time(hh, mm)


@dataclass(frozen=True, slots=True)
class Calendar:
    """When delivery may happen: windows, blackout dates, one IANA time zone."""

    tz: str = "UTC"
    windows: tuple[Window, ...] = ()
    blackouts: frozenset[date] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError) as ex:
            raise error("invalid-argument", f"unknown time zone {self.tz!r}") from ex

    @classmethod
    def build(
        cls, tz: str = "UTC", windows: Iterable[object] = (), blackouts: Iterable[str] = ()
    ) -> Calendar:
        """Build from text specs or stored dicts, and ISO dates (``2026-12-24``)."""
        try:
            days = frozenset(date.fromisoformat(str(d)) for d in blackouts)
        except ValueError as ex:
            raise error("invalid-argument", f"bad blackout date: {ex}") from ex
        return cls(tz or "UTC", tuple(Window.from_json(w) for w in windows), days)

    def windows_json(self) -> list[dict[str, object]]:
        return [w.to_json() for w in self.windows]

    def blackouts_json(self) -> list[str]:
        return sorted(d.isoformat() for d in self.blackouts)

    def local(self, now: float) -> datetime:
        """Naive local wall-clock time of the UTC instant ``now`` (unix seconds)."""
        return datetime.fromtimestamp(now, ZoneInfo(self.tz)).replace(tzinfo=None)

    def is_open(self, now: float) -> bool:
        """May delivery happen at the UTC instant ``now``?"""
        loc = self.local(now)
        if loc.date() in self.blackouts:
            return False
        return not self.windows or any(w.contains(loc) for w in self.windows)

    def next_open(self, now: float) -> float | None:
        """First instant >= ``now`` when delivery may happen, or None within ~13 months.

        Openness changes only at a window's start or end or at local midnight, so the answer
        is ``now`` or one of those boundaries: test each in order.
        """
        if self.is_open(now):
            return now
        zone = ZoneInfo(self.tz)
        first = self.local(now).date() - timedelta(days=1)
        marks = {time(0, 0), *(w.start for w in self.windows), *(w.end for w in self.windows)}
        for i in range(_HORIZON_DAYS):
            day = first + timedelta(days=i)
            candidates = sorted(
                datetime.combine(day, t).replace(tzinfo=zone, fold=fold).timestamp()
                for t in marks
                for fold in (0, 1)  # both readings of an ambiguous DST hour
            )
            for candidate in candidates:
                if candidate >= now and self.is_open(candidate):
                    return candidate
        return None


def utc(text: str) -> float:
    """Unix seconds of an ISO 8601 instant; a naive text is taken as UTC."""
    try:
        dt = datetime.fromisoformat(text)
    except ValueError as ex:
        raise error("invalid-argument", f"bad instant {text!r}: {ex}") from ex
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()
