"""Shared fixtures for campaign tests: a world (store, keys, package, meters, sim, users).

Uses the UMS store fixtures of ``support_ums`` (SQLite and PostgreSQL legs) and builds the
world with :func:`amiup.fleet.wiring.build_world`. Times are simulated unix seconds.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from amiup.fleet.wiring import World, build_world
from amiup.ums import campaigns as C
from amiup.ums.models import Assignment
from amiup.ums.store import Store

T0 = 1_800_000_000.0  # a Friday, 2027-01-15 08:00 UTC


def world(store: Store, n: int = 40, *, cells: int = 4, **kw: Any) -> World:
    """A world with ``n`` meters over ``cells`` cells."""
    return build_world(store, n, cells=cells, now=T0, **kw)


def launch(w: World, *, now: float = T0, start: bool = True, **spec: Any) -> int:
    """Create (operator), approve (approver) and start a campaign; its id."""
    spec.setdefault("target", {"kind": "fleet"})
    spec.setdefault("waves", {})
    pkg = spec.pop("package_id", w.package_id)
    with w.store.session() as s:
        c = C.create_campaign(s, actor=w.operator, now=now,
                              spec=C.CampaignSpec(name="test", package_id=pkg, **spec))
        cid = c.id
    with w.store.session() as s:
        C.approve(s, actor=w.approver, campaign_id=cid, now=now)
        if start:
            C.start(s, actor=w.operator, campaign_id=cid, now=now)
    return cid


def states(store: Store, cid: int) -> dict[str, int]:
    """Assignment counts per state."""
    with store.session() as s:
        return {
            st: int(n) for st, n in s.execute(
                select(Assignment.state, func.count()).where(Assignment.campaign_id == cid)
                .group_by(Assignment.state)
            )
        }


def campaign_state(store: Store, cid: int) -> str:
    with store.session() as s:
        return C.get_campaign(s, campaign_id=cid).state
