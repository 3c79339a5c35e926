"""Routes of the inventory: query meters with the filter language, register, status reports."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from amiup.errors import error
from amiup.ums import inventory
from amiup.ums.api.deps import NowDep, Require, StoreDep, read
from amiup.ums.api.pem import pem_to_der
from amiup.ums.api.schemas import MeterPublic, MeterPut, NonceIssued, Page, ReportResult
from amiup.ums.auth import Principal

router = APIRouter(tags=["meters"])
Serial = Annotated[str, Path(min_length=1, max_length=64)]
MAX_REPORT = 64 * 1024
_OCTETS = {"requestBody": {"required": True, "content": {
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}


@router.get("/meters", response_model=Page[MeterPublic])
async def list_meters(
    request: Request, _: Annotated[Principal, Require("meter.read")],
    filter: Annotated[str | None, Query(max_length=4096,
                                        description="filter language, see docs/ums.md")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
) -> dict[str, Any]:
    """Meters matching a filter, e.g. `model=X and ami_comm.version<2.0` (UMS-1)."""

    def page(db: Session) -> dict[str, Any]:
        total, rows = inventory.query(db, filter_expr=filter, limit=limit, offset=offset)
        return {"items": rows, "total": total, "limit": limit, "offset": offset}

    return await read(request, page)


@router.get("/meters/{serial}", response_model=MeterPublic)
def get_meter(serial: Serial, _: Annotated[Principal, Require("meter.read")],
              store: StoreDep) -> MeterPublic:
    """One meter and its components."""
    with store.session(readonly=True) as db:
        m = inventory.get_meter(db, serial)
        return MeterPublic(**inventory.meter_dict(m, inventory.components_of(db, [m.id])[m.id]))


@router.put("/meters/{serial}", response_model=MeterPublic)
def put_meter(serial: Serial, body: MeterPut, p: Annotated[Principal, Require("meter.write")],
              store: StoreDep, now: NowDep) -> MeterPublic:
    """Register a meter or update its static facts (operator)."""
    der = pem_to_der(body.public_key_pem) if body.public_key_pem else None
    with store.session() as db:
        m = inventory.upsert_meter(db, serial=serial, model=body.model, vendor=body.vendor,
                                   hw_rev=body.hw_rev, region=body.region, cell=body.cell,
                                   groups=body.groups, public_key_der=der,
                                   components=body.components, now=now, actor=p.username)
        return MeterPublic(**inventory.meter_dict(m, inventory.components_of(db, [m.id])[m.id]))


@router.post("/meters/{serial}/nonce", response_model=NonceIssued, status_code=201)
def new_nonce(serial: Serial, _: Annotated[Principal, Require("headend.work")],
              store: StoreDep) -> NonceIssued:
    """A fresh nonce for the meter's next status report (head-end)."""
    with store.session() as db:
        return NonceIssued(nonce=inventory.issue_nonce(db, inventory.get_meter(db, serial)).hex())


@router.post("/meters/{serial}/reports", response_model=ReportResult, openapi_extra=_OCTETS)
async def post_report(serial: Serial, request: Request,
                      p: Annotated[Principal, Require("headend.work")], store: StoreDep,
                      now: NowDep) -> ReportResult:
    """A meter's signed status report, relayed by a head-end; verified, then applied."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_REPORT:
            raise error("too-large", f"status report larger than {MAX_REPORT} bytes")

    def ingest() -> ReportResult:
        with store.session() as db:
            inventory.get_meter(db, serial)
            res = inventory.ingest_report(db, bytes(body), now=now, actor=p.username)
            if res.serial != serial:
                raise error("invalid-argument", "report is for another meter")
            return ReportResult(serial=res.serial, field_upgrades=len(res.field_upgrades),
                                changed={k: list(v) for k, v in res.changed.items()})

    return await run_in_threadpool(ingest)
