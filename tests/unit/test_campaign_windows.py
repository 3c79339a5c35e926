"""Delivery windows and blackout dates in a time zone, across midnight and DST changes."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from amiup.errors import AmiupError
from amiup.ums.windows import Calendar, Window, utc
from reqmark import req


def at(text: str, tz: str) -> float:
    """Unix seconds of a local wall-clock time in ``tz``."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz)).timestamp()


PARIS = "Europe/Paris"


@req("UMS-4", "AMI-3")
def test_night_window_crossing_midnight_in_local_time() -> None:
    cal = Calendar.build(PARIS, ["mon-fri 22:00-05:00"])
    assert cal.is_open(at("2027-01-15T23:30", PARIS))  # Friday night
    assert cal.is_open(at("2027-01-16T04:59", PARIS))  # Saturday early: Friday's window
    assert not cal.is_open(at("2027-01-16T05:00", PARIS))
    assert not cal.is_open(at("2027-01-16T23:00", PARIS))  # Saturday night: not listed
    assert not cal.is_open(at("2027-01-18T04:00", PARIS))  # Monday early: Sunday's window
    assert not cal.is_open(at("2027-01-15T12:00", PARIS))


@req("UMS-4")
def test_the_same_instant_differs_by_time_zone() -> None:
    instant = utc("2027-01-15T22:30:00+00:00")
    assert Calendar.build("UTC", ["22:00-23:00"]).is_open(instant)
    assert not Calendar.build(PARIS, ["22:00-23:00"]).is_open(instant)  # 23:30 in Paris
    assert Calendar.build("America/New_York", ["17:00-18:00"]).is_open(instant)


@req("UMS-4")
def test_blackout_date_closes_its_whole_local_day() -> None:
    cal = Calendar.build(PARIS, ["00:00-24:00"], ["2027-12-24"])
    assert not cal.is_open(at("2027-12-24T10:00", PARIS))
    assert not cal.is_open(at("2027-12-24T23:59", PARIS))
    assert cal.is_open(at("2027-12-25T00:00", PARIS))
    # with no windows the calendar is open except on blackout days
    free = Calendar.build(PARIS, [], ["2027-12-24"])
    assert free.is_open(at("2027-12-23T12:00", PARIS))
    assert not free.is_open(at("2027-12-24T12:00", PARIS))


@req("UMS-4")
def test_next_open_skips_weekend_and_blackout() -> None:
    cal = Calendar.build(PARIS, ["mon-fri 22:00-05:00"], ["2027-01-18"])
    friday_noon = at("2027-01-15T12:00", PARIS)
    assert cal.next_open(friday_noon) == at("2027-01-15T22:00", PARIS)
    saturday = at("2027-01-16T12:00", PARIS)
    # Monday the 18th is blacked out (its 22:00 start included); Tuesday 22:00 is next,
    # but Monday's window continuing into Tuesday 00:00-05:00 is open again on the 19th
    assert cal.next_open(saturday) == at("2027-01-19T00:00", PARIS)


@req("UMS-4")
def test_window_follows_daylight_saving_time() -> None:
    cal = Calendar.build(PARIS, ["02:00-04:00"])
    # 2027-03-28: Paris springs forward at 02:00 -> 03:00; 03:30 local is inside
    assert cal.is_open(at("2027-03-28T03:30", PARIS))
    # the window is 2 h of wall time in winter and in summer, at a different UTC hour
    winter = cal.next_open(utc("2027-01-10T12:00:00+00:00"))
    summer = cal.next_open(utc("2027-07-10T12:00:00+00:00"))
    assert winter is not None and summer is not None
    assert datetime.fromtimestamp(winter, ZoneInfo("UTC")).hour == 1
    assert datetime.fromtimestamp(summer, ZoneInfo("UTC")).hour == 0


def test_next_open_is_none_when_never_open() -> None:
    days = [f"2027-01-{d:02d}" for d in range(1, 32)]
    cal = Calendar.build("UTC", [], days)
    assert cal.next_open(utc("2027-01-15T00:00")) == utc("2027-02-01T00:00")
    every_day = [d.isoformat() for d in _all_days(2027, 2029)]
    assert Calendar.build("UTC", [], every_day).next_open(utc("2027-01-15T00:00")) is None


def _all_days(y0: int, y1: int) -> list[datetime]:
    from datetime import timedelta

    d, out = datetime(y0, 1, 1), []
    while d.year < y1:
        out.append(d.date())  # type: ignore[arg-type]
        d += timedelta(days=1)
    return out


def test_window_specs_parse_and_round_trip() -> None:
    w = Window.parse("sat,sun 00:00-06:00")
    assert w.days == frozenset({5, 6})
    assert Window.from_json(w.to_json()) == w
    assert Window.parse("fri-mon 22:00-05:00").days == frozenset({4, 5, 6, 0})


@pytest.mark.parametrize("bad", ["25:00-01:00", "mon-xyz 01:00-02:00", "10-11", "01:60-02:00"])
def test_bad_windows_are_refused(bad: str) -> None:
    with pytest.raises(AmiupError) as ex:
        Window.parse(bad)
    assert ex.value.code == "invalid-argument"


def test_unknown_time_zone_and_bad_date_are_refused() -> None:
    with pytest.raises(AmiupError):
        Calendar.build("Mars/Olympus")
    with pytest.raises(AmiupError):
        Calendar.build("UTC", [], ["2027-13-01"])
