"""Routes of the audit trail: read it page by page, verify the hash chain."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import func, select

from amiup.ums import audit
from amiup.ums.api.deps import Require, StoreDep
from amiup.ums.api.schemas import AuditPublic, AuditVerify, Page
from amiup.ums.auth import Principal
from amiup.ums.models import AuditEntry

router = APIRouter(tags=["audit"])


@router.get("/audit", response_model=Page[AuditPublic])
def list_audit(
    _: Annotated[Principal, Require("audit.read")], store: StoreDep,
    action: Annotated[str | None, Query(max_length=64)] = None,
    actor: Annotated[str | None, Query(max_length=64)] = None,
    object: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
) -> Page[AuditPublic]:
    """Audit rows in chain order, optionally by action, actor or object."""
    conds = []
    if action:
        conds.append(AuditEntry.action == action)
    if actor:
        conds.append(AuditEntry.actor == actor)
    if object:
        conds.append(AuditEntry.object == object)
    with store.session(readonly=True) as db:
        total = db.scalar(select(func.count()).select_from(AuditEntry).where(*conds)) or 0
        rows = db.scalars(select(AuditEntry).where(*conds).order_by(AuditEntry.seq)
                          .limit(limit).offset(offset)).all()
        return Page(items=[AuditPublic(**audit.entry_dict(r)) for r in rows], total=total,
                    limit=limit, offset=offset)


@router.get("/audit/verify", response_model=AuditVerify)
def verify_audit(_: Annotated[Principal, Require("audit.verify")],
                 store: StoreDep) -> AuditVerify:
    """Check the whole hash chain; `first_bad` names the first edited/deleted/reordered row."""
    with store.session(readonly=True) as db:
        r = audit.verify(db)
    return AuditVerify(ok=r.ok, rows=r.rows, first_bad=r.first_bad, reason=r.reason, head=r.head)
