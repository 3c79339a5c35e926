"""The scheduler on a store with simulated meters: delivery, read-back, gates, retries, time.

Each test drives a worker step by step on simulated time (no sleeps, no wall clock).
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from amiup.errors import AmiupError
from amiup.package.order import verify_order
from amiup.ums import audit
from amiup.ums import campaigns as C
from amiup.ums.models import Assignment, MeterComponent, MeterEvent
from amiup.ums.scheduler import Report, Scheduler
from amiup.ums.store import Store
from amiup.ums.worker import run_until_done
from reqmark import req
from support_campaign import T0, campaign_state, launch, states, world
from support_ums import sqlite_store_fixture, store_fixture  # noqa: F401


@req("UMS-5", "UMS-8", "UMS-1", "SEC-5")
def test_campaign_runs_to_completion_each_meter_activated_once(store: Store) -> None:
    w = world(store, 60, cells=6)
    cid = launch(w, waves={"pilot": 6, "steps": ["50%"]})
    end = run_until_done(w.worker(batch=7), [cid], now=T0)
    assert campaign_state(store, cid) == "completed"
    assert states(store, cid) == {"confirmed": 60}
    assert set(w.sim.activations("ami_app").values()) == {1}
    with store.session() as s:
        versions = {v for (v,) in s.execute(select(MeterComponent.running_version)
                                            .where(MeterComponent.component == "ami_app"))}
        assert versions == {"2.0.0"}  # inventory follows the read-back
        assert audit.verify(s).ok
        p = C.progress(s, campaign_id=cid)
    assert [x["state"] for x in p["waves"]] == ["passed", "passed", "passed"]
    assert end - T0 < 60  # a handful of simulated steps


@req("UMS-8")
def test_confirmed_only_after_the_new_version_is_read_back(sqlite_store: Store) -> None:
    store = sqlite_store
    w = world(store, 3, cells=1)
    cid = launch(w)
    sch = Scheduler(claimer="t")
    with store.session() as s:
        sch.tick(s, now=T0)
        jobs = sch.claim(s, now=T0, limit=10)
    assert [j.kind for j in jobs] == ["deliver"] * 3
    a, b, c = jobs
    reps = [Report(j.assignment_id, j.attempt, "progress", state=x)
            for j in jobs for x in ("transferring", "transferred", "verified", "activated")]
    with store.session() as s:
        sch.apply(s, reps, now=T0 + 1)
    assert states(store, cid) == {"activated": 3}  # the transfer and activation end: not done
    with store.session() as s:
        res = sch.apply(s, [
            Report(a.assignment_id, a.attempt, "running", version="2.0.0"),
            Report(b.assignment_id, b.attempt, "running", version="1.0.0",
                   code="self-test-failed"),
            Report(c.assignment_id, c.attempt, "running", version="1.0.0"),
        ], now=T0 + 2)
    assert res.transitions == {("activated", "confirmed"): 1, ("activated", "failed"): 2}
    with store.session() as s:
        codes = {i: c for i, c in s.execute(select(Assignment.id, Assignment.error_code))}
        assert codes[b.assignment_id] == "self-test-failed"
        assert codes[c.assignment_id] == "version-mismatch"
        events = s.execute(select(MeterEvent.code).where(MeterEvent.kind == "result")).all()
        assert len(events) == 3


@req("UMS-5")
def test_late_duplicate_and_stale_reports_change_nothing(sqlite_store: Store) -> None:
    store = sqlite_store
    w = world(store, 1, cells=1)
    launch(w)
    sch = Scheduler(claimer="t")
    with store.session() as s:
        (job,) = sch.claim(s, now=T0, limit=5)
    aid, att = job.assignment_id, job.attempt
    with store.session() as s:
        sch.apply(s, [Report(aid, att, "progress", state="verified")], now=T0)
        res = sch.apply(s, [Report(aid, att, "progress", state="transferring"),
                            Report(aid, att, "progress", state="verified"),
                            Report(aid, att - 1, "failed", code="unreachable"),
                            Report(4242, 1, "failed", code="unreachable")], now=T0)
    assert res.count == 0 and res.ignored == 4
    with store.session() as s:
        sch.apply(s, [Report(aid, att, "running", version="2.0.0")], now=T0)
        res = sch.apply(s, [Report(aid, att, "failed", code="timeout"),
                            Report(aid, att, "running", version="2.0.0")], now=T0)
    assert res.count == 0  # confirmed is final


@req("UMS-7")
def test_failure_threshold_halts_the_campaign_by_itself(store: Store) -> None:
    w = world(store, 40, cells=4)
    cid = launch(w, waves={"pilot": 4, "steps": ["50%"]}, failure_threshold=0.2)
    with store.session() as s:
        pilot = s.execute(select(Assignment.meter_id).where(Assignment.campaign_id == cid)
                          .order_by(Assignment.id).limit(2)).scalars().all()
    for serial in [w.meters[m - 1] for m in pilot]:  # meter ids follow serial order
        w.sim.meters[serial].fault = "self-test"
    run_until_done(w.worker(), [cid], now=T0)
    assert campaign_state(store, cid) == "halted"
    st = states(store, cid)
    assert st == {"failed": 2, "confirmed": 2, "pending": 36}  # later waves never started
    with store.session() as s:
        c = C.get_campaign(s, campaign_id=cid)
        assert "failure rate 50.0%" in c.state_reason
        assert C.failures(s, campaign_id=cid)[0]["code"] == "self-test-failed"
        # an operator looks, acknowledges the halt, and the rollout goes on
        C.resume(s, actor=w.operator, campaign_id=cid, now=T0 + 100)
    run_until_done(w.worker(), [cid], now=T0 + 100)
    assert campaign_state(store, cid) == "completed"
    assert states(store, cid) == {"failed": 2, "confirmed": 38}


@req("UMS-7")
def test_success_gate_holds_the_next_wave_until_the_pilot_is_done(sqlite_store: Store) -> None:
    store = sqlite_store
    w = world(store, 20, cells=2)
    cid = launch(w, waves={"pilot": 2})
    sch = Scheduler(claimer="t")
    with store.session() as s:
        jobs = sch.claim(s, now=T0, limit=100)
    assert len(jobs) == 2  # only the pilot is open
    with store.session() as s:
        sch.apply(s, [Report(jobs[0].assignment_id, 1, "running", version="2.0.0")], now=T0)
        sch.tick(s, now=T0)
        assert sch.claim(s, now=T0, limit=100) == []  # one pilot meter is still going
        sch.apply(s, [Report(jobs[1].assignment_id, 1, "running", version="2.0.0")], now=T0)
        t = sch.tick(s, now=T0)
        assert t.advanced == [(cid, 0)]
    with store.session() as s:
        sch.tick(s, now=T0)  # opens wave 1
        assert len(sch.claim(s, now=T0, limit=100)) == 18


@req("UMS-6", "UMS-9")
def test_retries_with_backoff_until_an_unreachable_meter_comes_back(sqlite_store: Store) -> None:
    store = sqlite_store
    w = world(store, 4, cells=1)
    w.sim.meters[w.meters[0]].offline_until = T0 + 1000
    cid = launch(w, retry={"max_attempts": 10, "backoff_s": 120, "jitter": 0})
    run_until_done(w.worker(), [cid], now=T0, dt=30)
    assert states(store, cid) == {"confirmed": 4}
    with store.session() as s:
        attempts = sorted(s.execute(select(Assignment.attempts)).scalars().all())
    # back-off 120, 240, 480: attempts at T0, +120, +360, +840, then back at +1000 -> 5th
    assert attempts == [1, 1, 1, 5]


@req("UMS-6")
def test_transfer_losses_are_retried_and_non_retryable_codes_are_final(
    sqlite_store: Store,
) -> None:
    store = sqlite_store
    w = world(store, 30, cells=3)
    w.headend.transfer_loss = 0.3
    w.sim.meters[w.meters[0]].fault = "self-test"
    cid = launch(w, retry={"max_attempts": 20, "backoff_s": 5, "jitter": 0},
                 failure_threshold=0.5, success_gate=0.5)
    run_until_done(w.worker(), [cid], now=T0, dt=5)
    assert states(store, cid) == {"confirmed": 29, "failed": 1}
    with store.session() as s:
        retried = s.execute(select(Assignment.attempts).where(Assignment.attempts > 1)).all()
        assert retried  # some transfers broke and were retried
        (fail,) = C.failures(s, campaign_id=cid)
        assert fail["code"] == "self-test-failed" and fail["attempts"] == 1


@req("UMS-9")
def test_deadline_turns_a_meter_that_never_answers_into_expired(store: Store) -> None:
    w = world(store, 3, cells=1)
    w.sim.meters[w.meters[2]].offline_until = float("inf")
    cid = launch(w, retry={"max_attempts": 1000, "backoff_s": 10, "jitter": 0},
                 assignment_timeout_s=600, failure_threshold=0.5, success_gate=0.6)
    end = run_until_done(w.worker(), [cid], now=T0, dt=20)
    assert campaign_state(store, cid) == "completed"
    assert states(store, cid) == {"confirmed": 2, "expired": 1}
    assert T0 + 600 <= end <= T0 + 700
    with store.session() as s:
        (x,) = C.failures(s, campaign_id=cid)
        assert (x["state"], x["code"]) == ("expired", "timeout")


@req("UMS-9", "UMS-6")
def test_a_lease_that_runs_out_brings_the_work_back(sqlite_store: Store) -> None:
    store = sqlite_store
    w = world(store, 2, cells=1)
    cid = launch(w)
    lost = Scheduler(claimer="ghost", signer=w.worker().scheduler.signer, lease_s=60)
    with store.session() as s:
        jobs = lost.claim(s, now=T0, limit=10)
    assert states(store, cid) == {"offered": 2}
    with store.session() as s:
        assert lost.tick(s, now=T0 + 59).lease_lost == 0
        assert lost.tick(s, now=T0 + 61).lease_lost == 2
    assert states(store, cid) == {"pending": 2}
    run_until_done(w.worker(), [cid], now=T0 + 200)
    assert states(store, cid) == {"confirmed": 2}
    # the redelivery carried a fresh order: higher counter than the lost one (anti-replay)
    for j in jobs:
        assert w.sim.meters[j.meter].counter > verify_order(
            j.order or b"", w.keys.anchors, meter_id=j.meter, now=T0, last_counter=0).counter


@req("UMS-4", "AMI-3")
def test_nothing_is_delivered_outside_the_window_or_on_a_blackout_day(
    sqlite_store: Store,
) -> None:
    store = sqlite_store
    w = world(store, 4, cells=2)
    # T0 is Friday 2027-01-15 09:00 in Paris; the window opens at 22:00 local
    cid = launch(w, windows=["mon-fri 22:00-05:00"], timezone="Europe/Paris",
                 blackout_dates=["2027-01-18"])
    sch = Scheduler(claimer="t")
    with store.session() as s:
        assert sch.claim(s, now=T0, limit=10) == []
        assert sch.claim(s, now=T0 + 12.5 * 3600, limit=10) == []  # 21:30 Paris
        assert len(sch.claim(s, now=T0 + 13 * 3600, limit=2)) == 2  # 22:00 Paris
        assert sch.claim(s, now=T0 + 3 * 86400 + 13 * 3600, limit=2) == []  # Monday: blackout
    assert states(store, cid) == {"offered": 2, "pending": 2}


@req("UMS-4", "SM-5")
def test_on_command_activation_waits_for_the_operator(store: Store) -> None:
    w = world(store, 6, cells=2)
    cid = launch(w, activation={"mode": "on-command"})
    wk = w.worker()
    for i in range(5):
        wk.step(T0 + i)
    assert states(store, cid) == {"verified": 6}  # staged everywhere, activated nowhere
    assert set(w.sim.activations("ami_app").values()) == {0}
    with store.session() as s:
        C.activate_now(s, actor=w.operator, campaign_id=cid, now=T0 + 10)
    run_until_done(wk, [cid], now=T0 + 10)
    assert states(store, cid) == {"confirmed": 6}
    assert set(w.sim.activations("ami_app").values()) == {1}


@req("UMS-4")
def test_activation_at_a_time(sqlite_store: Store) -> None:
    store = sqlite_store
    w = world(store, 2, cells=1)
    cid = launch(w, activation={"mode": "at", "at": T0 + 3600})
    wk = w.worker()
    for i in range(5):
        wk.step(T0 + i)
    assert states(store, cid) == {"scheduled": 2}
    run_until_done(wk, [cid], now=T0 + 3600)
    assert states(store, cid) == {"confirmed": 2}


@req("SEC-3")
def test_every_delivery_carries_an_order_signed_for_that_meter_alone(
    sqlite_store: Store,
) -> None:
    store = sqlite_store
    w = world(store, 3, cells=1)
    launch(w)
    sch = w.worker().scheduler
    with store.session() as s:
        jobs = sch.claim(s, now=T0, limit=10)
    with store.session() as s:
        pkg_digest = C.get_campaign(s, campaign_id=jobs[0].campaign_id).package_id
    assert pkg_digest
    for j in jobs:
        assert j.order is not None
        order = verify_order(j.order, w.keys.anchors, meter_id=j.meter, now=T0 + 10,
                             last_counter=0, package_digest=bytes.fromhex(j.package_digest))
        assert order.targets == (j.meter,) and order.activation == "now"
        with pytest.raises(AmiupError) as ex:  # another meter cannot use it
            other = next(x.meter for x in jobs if x.meter != j.meter)
            verify_order(j.order, w.keys.anchors, meter_id=other, now=T0, last_counter=0)
        assert ex.value.code == "order-wrong-target"
        with pytest.raises(AmiupError) as ex:  # nor can it be replayed
            verify_order(j.order, w.keys.anchors, meter_id=j.meter, now=T0,
                         last_counter=order.counter)
        assert ex.value.code == "order-replayed"


@req("UMS-6")
def test_retry_failed_puts_failures_back_and_reopens_the_campaign(sqlite_store: Store) -> None:
    store = sqlite_store
    w = world(store, 5, cells=1)
    bad = w.sim.meters[w.meters[4]]
    bad.fault = "self-test"
    cid = launch(w, failure_threshold=0.5, success_gate=0.5)
    run_until_done(w.worker(), [cid], now=T0)
    assert campaign_state(store, cid) == "completed"
    assert states(store, cid) == {"confirmed": 4, "failed": 1}
    bad.fault = None  # the vendor fixed the meter's problem
    with store.session() as s:
        assert C.retry_failed(s, actor=w.operator, campaign_id=cid, now=T0 + 50) == 1
    assert campaign_state(store, cid) == "running"
    run_until_done(w.worker(), [cid], now=T0 + 50)
    assert states(store, cid) == {"confirmed": 5}
