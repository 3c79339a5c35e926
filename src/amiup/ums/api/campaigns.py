"""Routes of campaigns: create, list, progress, failures, approve, start, pause, resume, ...

Thin: each route checks its action in one dependency, parses a bounded body, and calls one
function of :mod:`amiup.ums.campaigns` (which checks the lifecycle and separation of duties
again, and audits). The head-end API router (:mod:`amiup.ums.headend_api`) is mounted here
too, so the app factory includes both with this one module.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from amiup.ums import campaigns as C
from amiup.ums import headend_api
from amiup.ums.api.deps import NowDep, Require, StoreDep
from amiup.ums.api.schemas import Page
from amiup.ums.auth import Principal
from amiup.ums.models import Campaign

router = APIRouter(tags=["campaigns"])
router.include_router(headend_api.router)

CampaignId = Annotated[int, Path(ge=1, le=2**62)]
Size = int | Annotated[str, Field(max_length=16)]
MAX_TIME = 2.0**40  # far beyond any real date; keeps integers and floats sane


class TargetIn(BaseModel):
    kind: Literal["meters", "group", "filter", "fleet"]
    meters: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=100_000)
    group: str | None = Field(default=None, max_length=128)
    filter: str | None = Field(default=None, max_length=4096)


class WavesIn(BaseModel):
    pilot: Size = 0
    steps: list[Size] = Field(default_factory=list, max_length=50)


class ActivationIn(BaseModel):
    mode: Literal["now", "at", "on-command"] = "now"
    at: float | None = Field(default=None, ge=0, le=MAX_TIME)


class RetryIn(BaseModel):
    max_attempts: int = Field(default=5, ge=1, le=1000)
    backoff_s: float = Field(default=60.0, ge=0, le=30 * 86400)
    factor: float = Field(default=2.0, ge=1, le=10)
    max_backoff_s: float = Field(default=3600.0, ge=0, le=30 * 86400)
    jitter: float = Field(default=0.2, ge=0, lt=1)
    retryable: list[Annotated[str, Field(max_length=64)]] | None = Field(default=None,
                                                                         max_length=64)


class CampaignCreate(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    description: str = Field(default="", max_length=4096)
    package_id: int = Field(ge=1, le=2**62)
    target: TargetIn
    waves: WavesIn = Field(default_factory=WavesIn)
    success_gate: float = Field(default=0.95, ge=0, le=1)
    failure_threshold: float = Field(default=0.05, ge=0, le=1)
    windows: list[Annotated[str, Field(max_length=64)]] = Field(
        default_factory=list, max_length=32,
        description='local delivery windows, e.g. "mon-fri 22:00-05:00"')
    blackout_dates: list[Annotated[str, Field(max_length=10)]] = Field(
        default_factory=list, max_length=366, description="ISO dates, e.g. 2027-12-24")
    timezone: str = Field(default="UTC", max_length=64, description="IANA time zone")
    activation: ActivationIn = Field(default_factory=ActivationIn)
    retry: RetryIn = Field(default_factory=RetryIn)
    assignment_timeout_s: float = Field(default=7 * 86400.0, gt=0, le=366 * 86400)
    deadline: float | None = Field(default=None, ge=0, le=MAX_TIME)
    allow_downgrade: bool = False
    on_conflict: Literal["skip", "fail"] = "skip"


class Reason(BaseModel):
    reason: str = Field(default="", max_length=1024)


class CampaignPublic(BaseModel):
    id: int
    name: str
    description: str
    state: str
    state_reason: str
    package_id: int
    component: str
    metrology: bool
    target: dict[str, Any]
    waves_plan: dict[str, Any]
    success_gate: float
    failure_threshold: float
    windows: list[Any]
    blackout_dates: list[Any]
    timezone: str
    activation: dict[str, Any]
    retry: dict[str, Any]
    assignment_timeout_s: float
    deadline: float | None
    allow_downgrade: bool
    created_by: int
    approved_by: int | None
    created_at: float
    approved_at: float | None
    started_at: float | None
    finished_at: float | None
    revision: int


class Progress(BaseModel):
    campaign: int
    state: str
    reason: str
    total: int
    states: dict[str, int]
    confirmed_fraction: float
    waves: list[dict[str, Any]]
    failure_reasons: dict[str, int]
    resolved: dict[str, Any]


class Failure(BaseModel):
    assignment: int
    meter: str
    state: str
    code: str | None
    attempts: int
    at: float


class Retried(BaseModel):
    retried: int


def _public(c: Campaign) -> CampaignPublic:
    return CampaignPublic(**{k: getattr(c, k) for k in CampaignPublic.model_fields})


@router.get("/campaigns", response_model=Page[CampaignPublic])
def list_campaigns(
    _: Annotated[Principal, Require("campaign.read")], store: StoreDep,
    state: Annotated[Literal["draft", "approved", "running", "paused", "halted", "completed",
                             "cancelled"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
) -> Page[CampaignPublic]:
    """Campaigns, newest first, optionally in one state."""
    q = select(Campaign)
    n = select(func.count()).select_from(Campaign)
    if state is not None:
        q, n = q.where(Campaign.state == state), n.where(Campaign.state == state)
    with store.session(readonly=True) as db:
        total = int(db.execute(n).scalar_one())
        rows = db.execute(q.order_by(Campaign.id.desc()).offset(offset).limit(limit)).scalars()
        return Page(items=[_public(c) for c in rows], total=total, limit=limit, offset=offset)


@router.post("/campaigns", response_model=CampaignPublic, status_code=201)
def create_campaign(body: CampaignCreate, p: Annotated[Principal, Require("campaign.create")],
                    store: StoreDep, now: NowDep) -> CampaignPublic:
    """Create a draft campaign: the target is resolved and planned into waves now (UMS-3)."""
    retry = body.retry.model_dump(exclude_none=True)
    spec = C.CampaignSpec(
        name=body.name, description=body.description, package_id=body.package_id,
        target=body.target.model_dump(exclude_none=True), waves=body.waves.model_dump(),
        success_gate=body.success_gate, failure_threshold=body.failure_threshold,
        windows=body.windows, blackout_dates=body.blackout_dates, timezone=body.timezone,
        activation=body.activation.model_dump(), retry=retry,
        assignment_timeout_s=body.assignment_timeout_s, deadline=body.deadline,
        allow_downgrade=body.allow_downgrade, on_conflict=body.on_conflict,
    )
    with store.session() as db:
        return _public(C.create_campaign(db, actor=p, spec=spec, now=now))


@router.get("/campaigns/{campaign_id}", response_model=CampaignPublic)
def get_campaign(campaign_id: CampaignId, _: Annotated[Principal, Require("campaign.read")],
                 store: StoreDep) -> CampaignPublic:
    """One campaign."""
    with store.session(readonly=True) as db:
        return _public(C.get_campaign(db, campaign_id=campaign_id))


@router.get("/campaigns/{campaign_id}/progress", response_model=Progress)
def progress(campaign_id: CampaignId, _: Annotated[Principal, Require("campaign.read")],
             store: StoreDep) -> Progress:
    """Counts per state and per wave, failure reasons (UMS-5)."""
    with store.session(readonly=True) as db:
        return Progress(**C.progress(db, campaign_id=campaign_id))


@router.get("/campaigns/{campaign_id}/failures", response_model=list[Failure])
def failures(campaign_id: CampaignId, _: Annotated[Principal, Require("campaign.read")],
             store: StoreDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
             offset: Annotated[int, Query(ge=0, le=2**31)] = 0) -> list[Failure]:
    """Failed and expired meters with their reasons (UMS-5)."""
    with store.session(readonly=True) as db:
        C.get_campaign(db, campaign_id=campaign_id)
        return [Failure(**f) for f in C.failures(db, campaign_id=campaign_id, offset=offset,
                                                 limit=limit)]


@router.post("/campaigns/{campaign_id}/approve", response_model=CampaignPublic)
def approve(campaign_id: CampaignId, p: Annotated[Principal, Require("campaign.approve")],
            store: StoreDep, now: NowDep) -> CampaignPublic:
    """Approve (an approver who is not the creator; SEC-4, MET-4)."""
    with store.session() as db:
        return _public(C.approve(db, actor=p, campaign_id=campaign_id, now=now))


@router.post("/campaigns/{campaign_id}/start", response_model=CampaignPublic)
def start(campaign_id: CampaignId, p: Annotated[Principal, Require("campaign.launch")],
          store: StoreDep, now: NowDep) -> CampaignPublic:
    """Start an approved campaign: its first wave opens."""
    with store.session() as db:
        return _public(C.start(db, actor=p, campaign_id=campaign_id, now=now))


@router.post("/campaigns/{campaign_id}/resume", response_model=CampaignPublic)
def resume(campaign_id: CampaignId, p: Annotated[Principal, Require("campaign.launch")],
           store: StoreDep, now: NowDep) -> CampaignPublic:
    """Resume a paused or halted campaign (resuming a halt acknowledges it)."""
    with store.session() as db:
        return _public(C.resume(db, actor=p, campaign_id=campaign_id, now=now))


@router.post("/campaigns/{campaign_id}/pause", response_model=CampaignPublic)
def pause(campaign_id: CampaignId, body: Reason,
          p: Annotated[Principal, Require("campaign.control")], store: StoreDep,
          now: NowDep) -> CampaignPublic:
    """Pause: nothing new goes out; deliveries in flight finish (UMS-6)."""
    with store.session() as db:
        return _public(C.pause(db, actor=p, campaign_id=campaign_id, now=now,
                               reason=body.reason))


@router.post("/campaigns/{campaign_id}/cancel", response_model=CampaignPublic)
def cancel(campaign_id: CampaignId, body: Reason,
           p: Annotated[Principal, Require("campaign.control")], store: StoreDep,
           now: NowDep) -> CampaignPublic:
    """Cancel the campaign and its active assignments (UMS-6)."""
    with store.session() as db:
        return _public(C.cancel(db, actor=p, campaign_id=campaign_id, now=now,
                                reason=body.reason))


@router.post("/campaigns/{campaign_id}/retry", response_model=Retried)
def retry(campaign_id: CampaignId, p: Annotated[Principal, Require("campaign.control")],
          store: StoreDep, now: NowDep) -> Retried:
    """Put failed and expired assignments back to pending (UMS-6)."""
    with store.session() as db:
        return Retried(retried=C.retry_failed(db, actor=p, campaign_id=campaign_id, now=now))


@router.post("/campaigns/{campaign_id}/activate", response_model=CampaignPublic)
def activate(campaign_id: CampaignId, p: Annotated[Principal, Require("campaign.control")],
             store: StoreDep, now: NowDep) -> CampaignPublic:
    """The later command of an on-command activation (UMS-4, SM-5)."""
    with store.session() as db:
        return _public(C.activate_now(db, actor=p, campaign_id=campaign_id, now=now))
