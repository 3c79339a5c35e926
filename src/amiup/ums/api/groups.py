"""Routes of saved groups: static member lists or stored filters."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from amiup.ums import audit, inventory
from amiup.ums.api.deps import NowDep, Require, StoreDep, read
from amiup.ums.api.schemas import (
    GroupCreate,
    GroupPublic,
    Members,
    MembersChanged,
    MeterPublic,
    Page,
)
from amiup.ums.auth import Principal
from amiup.ums.models import Group, Meter

router = APIRouter(tags=["groups"])
GroupName = Annotated[str, Path(min_length=1, max_length=128)]


@router.get("/groups", response_model=Page[GroupPublic])
async def list_groups(request: Request, _: Annotated[Principal, Require("group.read")],
                      limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                      offset: Annotated[int, Query(ge=0, le=2**31)] = 0) -> dict[str, Any]:
    """All saved groups with their current sizes."""

    def page(db: Session) -> dict[str, Any]:
        rows = db.scalars(select(Group).order_by(Group.name).limit(limit).offset(offset)).all()
        total = (len(rows) if offset == 0 and len(rows) < limit  # no need to count again
                 else db.scalar(select(func.count()).select_from(Group)) or 0)
        return {"items": [inventory.group_dict(db, g) for g in rows], "total": total,
                "limit": limit, "offset": offset}

    return await read(request, page)


@router.post("/groups", response_model=GroupPublic, status_code=201)
def create_group(body: GroupCreate, p: Annotated[Principal, Require("group.write")],
                 store: StoreDep, now: NowDep) -> GroupPublic:
    """Save a group: `filter` (kept as an expression) or `members` (serials)."""
    with store.session() as db:
        g = inventory.create_group(db, name=body.name, filter_expr=body.filter,
                                   members=body.members, description=body.description,
                                   now=now, actor=p.username)
        return GroupPublic(**inventory.group_dict(db, g))


@router.get("/groups/{name}", response_model=GroupPublic)
def get_group(name: GroupName, _: Annotated[Principal, Require("group.read")],
              store: StoreDep) -> GroupPublic:
    """One group."""
    with store.session(readonly=True) as db:
        return GroupPublic(**inventory.group_dict(db, inventory.get_group(db, name)))


@router.get("/groups/{name}/meters", response_model=Page[MeterPublic])
def group_meters(name: GroupName, _: Annotated[Principal, Require("meter.read")],
                 store: StoreDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                 offset: Annotated[int, Query(ge=0, le=2**31)] = 0) -> Page[MeterPublic]:
    """The meters in a group now."""
    with store.session(readonly=True) as db:
        inventory.get_group(db, name)
        cond = inventory.in_group(db, name)
        total = db.scalar(select(func.count()).select_from(Meter).where(cond)) or 0
        rows = db.scalars(select(Meter).where(cond).order_by(Meter.id).limit(limit)
                          .offset(offset)).all()
        comps = inventory.components_of(db, [m.id for m in rows])
        return Page(items=[MeterPublic(**inventory.meter_dict(m, comps[m.id])) for m in rows],
                    total=total, limit=limit, offset=offset)


def _members(name: str, body: Members, p: Principal, store: StoreDep, now: float,
             add: bool) -> MembersChanged:
    with store.session() as db:
        g = inventory.get_group(db, name)
        n = inventory.set_members(db, g, body.serials, add=add)
        audit.record(db, at=now, actor=p.username,
                     action="group.add" if add else "group.remove", object=f"group:{name}",
                     after={"serials": body.serials[:100], "changed": n})
        return MembersChanged(changed=n)


@router.post("/groups/{name}/members", response_model=MembersChanged)
def add_members(name: GroupName, body: Members, p: Annotated[Principal, Require("group.write")],
                store: StoreDep, now: NowDep) -> MembersChanged:
    """Add meters to a static group."""
    return _members(name, body, p, store, now, True)


@router.post("/groups/{name}/members/remove", response_model=MembersChanged)
def remove_members(name: GroupName, body: Members,
                   p: Annotated[Principal, Require("group.write")], store: StoreDep,
                   now: NowDep) -> MembersChanged:
    """Remove meters from a static group."""
    return _members(name, body, p, store, now, False)
