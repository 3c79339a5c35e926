"""Event log: hash chain, bounded ring with checkpoint, export, tamper detection (SM-8)."""

from __future__ import annotations

import pytest

from amiup.errors import AmiupError
from amiup.meter.eventlog import EventLog, verify_export
from amiup.meter.storage import MemoryStorage, Records
from reqmark import req
from support_meter import T0, Orders, install, new_meter, package


def _log(capacity: int = 8) -> EventLog:
    s = MemoryStorage()
    log = EventLog(s, Records(s), capacity)
    log.load()
    return log


@req("SM-8", "SEC-5")
def test_chain_verifies_and_an_edited_entry_is_detected() -> None:
    log = _log()
    for i in range(5):
        log.append(T0 + i, "ami_app", "step", "ok", f"n{i}")
    data = log.export()
    assert verify_export(data, log.head) == 5
    data["entries"][2]["outcome"] = "failed"
    with pytest.raises(AmiupError) as info:
        verify_export(data, log.head)
    assert info.value.code == "digest-mismatch"


@req("SM-8", "SEC-5")
def test_recomputed_forgery_is_caught_by_the_reported_head() -> None:
    log = _log()
    for i in range(4):
        log.append(T0 + i, "ami_app", "step", "ok")
    head = log.head
    data = log.export()
    del data["entries"][-1]  # drop the last entry: chain still links, head does not match
    with pytest.raises(AmiupError):
        verify_export(data, head)


@req("SM-8")
def test_ring_keeps_the_last_entries_and_verifies_from_its_checkpoint() -> None:
    log = _log(capacity=8)
    for i in range(30):
        log.append(T0 + i, "meter", "tick", "ok", str(i))
    again = EventLog(log.storage, Records(log.storage), 8)
    again.load()
    assert [e.detail for e in again.entries] == [str(i) for i in range(22, 30)]
    assert again.checkpoint[0] == 22
    assert verify_export(again.export(), log.head) == 8


@req("SM-8")
def test_every_upgrade_step_is_logged_with_time_and_outcome() -> None:
    meter, orders = new_meter(), Orders()
    install(meter, package("ami_app", "2.0.0", 2), orders, T0 + 50)
    kinds = [(e.kind, e.outcome) for e in meter.log.entries if e.component == "ami_app"]
    assert kinds == [("offered", "accepted"), ("verified", "ok"), ("activated", "trial"),
                     ("committed", "ok")]
    assert all(e.time == T0 + 50 for e in meter.log.entries if e.component == "ami_app")
    events = [(e.component, e.kind) for e in meter.pop_events()]
    assert ("ami_app", "received") in events and ("ami_app", "committed") in events
