"""Campaign lifecycle on the store: create, approve, start, pause, resume, cancel, retry.

Runs on SQLite and on PostgreSQL (same module, ``store`` fixture of support_ums).
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from amiup.errors import AmiupError
from amiup.fleet.wiring import import_package, make_package, make_user
from amiup.ums import audit
from amiup.ums import campaigns as C
from amiup.ums.auth import Principal
from amiup.ums.models import Assignment, Wave
from amiup.ums.store import Store
from reqmark import req
from support_campaign import T0, campaign_state, launch, states, world
from support_ums import sqlite_store_fixture, store_fixture  # noqa: F401


def spec(pkg: int, **kw: object) -> C.CampaignSpec:
    kw.setdefault("target", {"kind": "fleet"})
    return C.CampaignSpec(name="c", package_id=pkg, **kw)  # type: ignore[arg-type]


@req("UMS-3", "UMS-5", "UMS-7")
def test_create_materializes_waves_per_cell_in_claim_order(store: Store) -> None:
    w = world(store, 40, cells=4)
    with store.session() as s:
        c = C.create_campaign(s, actor=w.operator, now=T0,
                              spec=spec(w.package_id, waves={"pilot": 4, "steps": ["50%"]}))
        cid = c.id
        assert c.state == "draft" and c.target["resolved"]["assigned"] == 40
        waves = s.execute(select(Wave).where(Wave.campaign_id == cid)
                          .order_by(Wave.number)).scalars().all()
        assert [(x.name, x.planned, x.state) for x in waves] == [
            ("pilot", 4, "pending"), ("wave 1", 16, "pending"), ("wave 2", 20, "pending")]
        from amiup.ums.models import Meter

        rows = s.execute(select(Assignment.wave_id, Meter.cell)
                         .join(Meter, Meter.id == Assignment.meter_id)
                         .where(Assignment.campaign_id == cid).order_by(Assignment.id)).all()
    pilot_cells = [cell for wid, cell in rows if wid == waves[0].id]
    assert sorted(pilot_cells) == ["cell000", "cell001", "cell002", "cell003"]
    assert [cell for _, cell in rows[4:8]] != [rows[4][1]] * 4  # round-robin, not by cell
    assert states(store, cid) == {"pending": 40}


@req("UMS-3")
def test_targets_meters_group_and_filter(sqlite_store: Store) -> None:
    store = sqlite_store
    w = world(store, 20, cells=2)
    from amiup.ums import inventory

    with store.session() as s:
        inventory.create_group(s, name="g1", now=T0, actor="t", members=w.meters[:3])
    with store.session() as s:
        a = C.create_campaign(s, actor=w.operator, now=T0, spec=spec(
            w.package_id, target={"kind": "meters", "meters": w.meters[:2]}))
        assert a.target["resolved"]["assigned"] == 2
        C.cancel(s, actor=w.operator, campaign_id=a.id, now=T0)
    with store.session() as s:
        b = C.create_campaign(s, actor=w.operator, now=T0, spec=spec(
            w.package_id, target={"kind": "group", "group": "g1"}))
        assert b.target["resolved"]["assigned"] == 3
        C.cancel(s, actor=w.operator, campaign_id=b.id, now=T0)
    with store.session() as s:
        c = C.create_campaign(s, actor=w.operator, now=T0, spec=spec(
            w.package_id, target={"kind": "filter", "filter": "cell=cell001"}))
        assert c.target["resolved"]["assigned"] == 10


@req("UMS-12")
def test_incompatible_and_current_meters_are_set_aside(sqlite_store: Store) -> None:
    store = sqlite_store
    w = world(store, 10, cells=2)
    from amiup.fleet.wiring import seed_meters

    seed_meters(store, ["other1", "other2"], model="M9", now=T0)
    seed_meters(store, ["done1"], versions={"ami_app": "2.0.0"}, now=T0)
    with store.session() as s:
        c = C.create_campaign(s, actor=w.operator, now=T0, spec=spec(w.package_id))
        r = c.target["resolved"]
    assert (r["matched"], r["incompatible"], r["current"], r["assigned"]) == (13, 2, 1, 10)


@req("UMS-12")
def test_two_campaigns_never_hold_one_meter_component(store: Store) -> None:
    w = world(store, 10, cells=2)
    first = launch(w, target={"kind": "meters", "meters": w.meters[:6]})
    with pytest.raises(AmiupError) as ex, store.session() as s:
        C.create_campaign(s, actor=w.operator, now=T0,
                          spec=spec(w.package_id, on_conflict="fail"))
    assert ex.value.code == "conflict"
    with store.session() as s:
        c = C.create_campaign(s, actor=w.operator, now=T0, spec=spec(w.package_id))
        assert c.target["resolved"]["conflict"] == 6 and c.target["resolved"]["assigned"] == 4
    # the store itself refuses a second active assignment (partial unique index)
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError), store.session() as s:
        a = s.execute(select(Assignment).where(Assignment.campaign_id == first)).scalars().first()
        assert a is not None
        s.add(Assignment(campaign_id=c.id, meter_id=a.meter_id, component=a.component,
                         state="pending", attempts=0, created_at=T0, updated_at=T0))
        s.flush()
    # another component of the same meter is free
    pkg2 = import_package(store, w.keys, make_package(w.keys, component="ami_comm"), now=T0)
    with store.session() as s:
        d = C.create_campaign(s, actor=w.operator, now=T0, spec=spec(pkg2))
        assert d.target["resolved"]["assigned"] == 10


@req("SEC-4", "MET-4")
def test_approval_needs_another_person_with_the_approver_role(store: Store) -> None:
    w = world(store, 4, cells=1)
    both = make_user(store, "bea", ["operator", "approver"])
    with store.session() as s:
        cid = C.create_campaign(s, actor=both, now=T0, spec=spec(w.package_id)).id
    for who, code in ((both, "forbidden"), (w.operator, "forbidden")):
        with pytest.raises(AmiupError) as ex, store.session() as s:
            C.approve(s, actor=who, campaign_id=cid, now=T0)
        assert ex.value.code == code
    with pytest.raises(AmiupError) as ex, store.session() as s:
        C.start(s, actor=both, campaign_id=cid, now=T0)  # not approved
    assert ex.value.code == "invalid-state"
    with store.session() as s:
        C.approve(s, actor=w.approver, campaign_id=cid, now=T0)
        with pytest.raises(AmiupError) as ex:
            C.start(s, actor=w.approver, campaign_id=cid, now=T0)  # approvers do not launch
        assert ex.value.code == "forbidden"
    with store.session() as s:
        assert C.start(s, actor=both, campaign_id=cid, now=T0).state == "running"


@req("MET-4", "SEC-4")
def test_metrology_campaign_always_needs_a_distinct_approver(sqlite_store: Store) -> None:
    store = sqlite_store
    w = world(store, 4, cells=1)
    pkg = import_package(store, w.keys, make_package(w.keys, component="metrology"), now=T0)
    sneaky = Principal(999, "sneaky", frozenset({"operator"}))
    with store.session() as s:
        c = C.create_campaign(s, actor=w.operator, now=T0, spec=spec(pkg))
        assert c.metrology
        cid = c.id
    with pytest.raises(AmiupError) as ex, store.session() as s:
        C.approve(s, actor=sneaky, campaign_id=cid, now=T0)
    assert ex.value.code == "forbidden"
    with store.session() as s:
        c = C.approve(s, actor=w.approver, campaign_id=cid, now=T0)
        assert c.approved_by == w.approver.user_id and c.state == "approved"


@req("UMS-6", "SEC-5")
def test_pause_resume_cancel_and_every_step_is_audited(store: Store) -> None:
    w = world(store, 6, cells=2)
    cid = launch(w)
    with store.session() as s:
        C.pause(s, actor=w.operator, campaign_id=cid, now=T0 + 1, reason="storm")
    assert campaign_state(store, cid) == "paused"
    with pytest.raises(AmiupError) as ex, store.session() as s:
        C.pause(s, actor=w.operator, campaign_id=cid, now=T0 + 2)
    assert ex.value.code == "invalid-state"
    with store.session() as s:
        C.resume(s, actor=w.operator, campaign_id=cid, now=T0 + 3)
        C.cancel(s, actor=w.operator, campaign_id=cid, now=T0 + 4, reason="changed plan")
    assert campaign_state(store, cid) == "cancelled"
    assert states(store, cid) == {"cancelled": 6}
    with pytest.raises(AmiupError), store.session() as s:
        C.resume(s, actor=w.operator, campaign_id=cid, now=T0 + 5)
    with store.session() as s:
        from amiup.ums.models import AuditEntry

        actions = [a for (a,) in s.execute(select(AuditEntry.action).where(
            AuditEntry.object == f"campaign:{cid}").order_by(AuditEntry.seq))]
        assert actions == ["campaign.create", "campaign.approve", "campaign.start",
                           "campaign.pause", "campaign.resume", "campaign.cancel",
                           "assignment.cancel"]
        assert audit.verify(s).ok
    # a cancelled campaign frees its meters for a new one (UMS-12)
    with store.session() as s:
        c = C.create_campaign(s, actor=w.operator, now=T0, spec=spec(w.package_id))
        assert c.target["resolved"]["assigned"] == 6


def test_bad_specs_are_refused_before_anything_is_written(sqlite_store: Store) -> None:
    w = world(sqlite_store, 2, cells=1)
    bad = [dict(windows=["25:00-01:00"]), dict(timezone="Nowhere/Land"),
           dict(waves={"pilot": -1}), dict(retry={"max_attempts": 0}),
           dict(activation={"mode": "later"}), dict(target={"kind": "planet"}),
           dict(success_gate=2.0), dict(target={"kind": "meters", "meters": ["nope"]})]
    for kw in bad:
        with pytest.raises(AmiupError) as ex, sqlite_store.session() as s:
            C.create_campaign(s, actor=w.operator, now=T0, spec=spec(w.package_id, **kw))
        assert ex.value.code == "invalid-argument", kw
    with sqlite_store.session() as s:
        from amiup.ums.models import Campaign

        assert s.execute(select(Campaign)).first() is None
