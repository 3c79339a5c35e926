"""Assignments keep referential integrity without declared foreign keys (migration 0003).

The store itself refuses an assignment whose meter, campaign or wave is missing (or whose
wave belongs to another campaign), on insert and on update, and deleting a meter, campaign
or wave still cascades as the foreign keys did. Runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import IntegrityError

from amiup.ums import campaigns as C
from amiup.ums.models import Assignment, Campaign, Meter, Wave
from amiup.ums.store import Store
from reqmark import req
from support_campaign import T0, world
from support_ums import store_fixture  # noqa: F401


def _campaign(store: Store, n: int = 6) -> tuple[Any, int]:
    w = world(store, n, cells=2)
    with store.session() as s:
        cid = C.create_campaign(s, actor=w.operator, now=T0, spec=C.CampaignSpec(
            name="c", package_id=w.package_id, target={"kind": "fleet"},
            waves={"pilot": 2})).id
    return w, cid


def _count(store: Store, *where: Any) -> int:
    with store.session() as s:
        return int(s.scalar(select(func.count()).select_from(Assignment).where(*where)))


@req("UMS-5", "UMS-12")
def test_an_assignment_must_refer_to_existing_rows(store: Store) -> None:
    _w, cid = _campaign(store)
    with store.session() as s:
        a = s.execute(select(Assignment).where(Assignment.campaign_id == cid)).scalars().first()
        assert a is not None
        meter, wave = a.meter_id, a.wave_id
        mine = s.get(Campaign, cid)
        assert mine is not None
        other = Campaign(name="other", package_id=mine.package_id, component="ami_comm",
                         created_by=mine.created_by, created_at=T0)
        s.add(other)
        s.flush()
        other_id = other.id

    def add(**kw: Any) -> None:
        row = {"campaign_id": other_id, "meter_id": meter, "component": "ami_comm",
               "state": "pending", "attempts": 0, "created_at": T0, "updated_at": T0, **kw}
        with store.session() as s:
            s.add(Assignment(**row))

    bad: list[dict[str, Any]] = [
        {"meter_id": 10**9},  # no such meter
        {"campaign_id": 10**9},  # no such campaign
        {"wave_id": 10**9},  # no such wave
        {"wave_id": wave},  # a wave of another campaign
    ]
    for kw in bad:
        with pytest.raises(IntegrityError):
            add(**kw)
    add()  # the same row with valid references goes in (another component: no UMS-12 clash)
    assert _count(store, Assignment.campaign_id == other_id) == 1
    changes: list[dict[str, Any]] = [{"meter_id": 10**9}, {"campaign_id": 10**9},
                                     {"wave_id": 10**9}]
    for values in changes:
        with pytest.raises(IntegrityError), store.session() as s:
            s.execute(update(Assignment).where(Assignment.campaign_id == other_id)
                      .values(**values))


@req("UMS-5")
def test_a_bulk_insert_with_one_bad_row_inserts_nothing(store: Store) -> None:
    _w, cid = _campaign(store)
    with store.session() as s:
        meters = list(s.execute(select(Meter.id).order_by(Meter.id)).scalars())
        waves = list(s.execute(select(Wave.id).where(Wave.campaign_id == cid)).scalars())
    before = _count(store)
    with pytest.raises(IntegrityError), store.session() as s:
        # the creation path itself, with one meter id that does not exist
        C._bulk_insert_assignments(
            s, cid, "han_app", T0, np.asarray([waves[0]] * (len(meters) + 1)),
            np.asarray([*meters, 10**9]))
    assert _count(store) == before
    # the store still refuses a bad row afterwards (SQLite's swapped trigger is back)
    with pytest.raises(IntegrityError), store.session() as s:
        s.add(Assignment(campaign_id=cid, meter_id=10**9, component="han_comm",
                         state="pending", attempts=0, created_at=T0, updated_at=T0))
    with store.session() as s:  # and a good bulk insert goes in, all rows
        C._bulk_insert_assignments(s, cid, "han_app", T0, np.asarray([waves[0]] * len(meters)),
                                   np.asarray(meters))
    assert _count(store) == before + len(meters)


@req("UMS-5")
def test_deleting_a_parent_cascades_like_the_foreign_keys_did(store: Store) -> None:
    _w, cid = _campaign(store)
    with store.session() as s:
        first = s.execute(select(Assignment).where(Assignment.campaign_id == cid)
                          .order_by(Assignment.id)).scalars().first()
        assert first is not None
        meter, wave = first.meter_id, first.wave_id
    total = _count(store, Assignment.campaign_id == cid)
    with store.session() as s:
        s.execute(delete(Meter).where(Meter.id == meter))
    assert _count(store, Assignment.meter_id == meter) == 0
    assert _count(store, Assignment.campaign_id == cid) == total - 1
    in_wave = _count(store, Assignment.wave_id == wave)
    assert in_wave > 0
    with store.session() as s:
        s.execute(delete(Wave).where(Wave.id == wave))
    assert _count(store, Assignment.wave_id == wave) == 0
    assert _count(store, Assignment.campaign_id == cid, Assignment.wave_id.is_(None)) == in_wave
    with store.session() as s:
        s.execute(delete(Campaign).where(Campaign.id == cid))
    assert _count(store, Assignment.campaign_id == cid) == 0


@req("UMS-5")
def test_truncating_a_referenced_table_is_refused_on_postgresql(store: Store) -> None:
    if store.dialect != "postgresql":
        pytest.skip("TRUNCATE is PostgreSQL's")
    _campaign(store)
    with pytest.raises(IntegrityError), store.session() as s:
        s.execute(text("TRUNCATE waves"))  # no foreign key guards waves any more
    assert _count(store) > 0
