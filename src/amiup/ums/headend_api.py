"""The head-end HTTP API: separate head-end processes pull work and post results.

Two routes under ``/headend`` (mounted by :mod:`amiup.ums.api.campaigns`), both needing a
bearer token whose user may ``headend.work``:

* ``POST /headend/claim {"max": n, "lease_s": s}`` -> ``{"jobs": [...]}``: the same claim a
  worker makes (conditional, leased, ``SKIP LOCKED`` on PostgreSQL), each deliver job with
  its upgrade order signed by the UMS's utility key. The claimer is ``headend:<user>``.
* ``POST /headend/reports {"reports": [...]}`` -> ``{"applied": n, "ignored": m}``: reports
  are applied as conditional transitions, and only for assignments this head-end holds: a
  head-end cannot move another's work, and a report after its lease ran out is ignored (the
  work was handed out again).

The client side, for ``amiup headend run --ums URL --token T``, is :class:`HeadEndClient` and
:func:`run_remote_headend`, which drives any object implementing the worker's ``HeadEnd``
interface (``submit`` / ``poll``) against a remote UMS.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from amiup.errors import CODES, AmiupError, error
from amiup.ums.api.deps import NowDep, Require, StoreDep
from amiup.ums.auth import Principal
from amiup.ums.scheduler import Job, OrderSigner, Report, Scheduler
from amiup.ums.worker import HeadEnd

router = APIRouter(prefix="/headend", tags=["headend"])
ORDER_KEY_ENV = "AMIUP_UMS_ORDER_KEY"  # path of the utility's order-signing key (PEM)
MAX_CLAIM = 5000
MAX_REPORTS = 20000


class ClaimRequest(BaseModel):
    max: int = Field(default=100, ge=1, le=MAX_CLAIM)
    lease_s: float = Field(default=300.0, ge=1.0, le=86400.0)


class JobOut(BaseModel):
    assignment_id: int
    attempt: int
    kind: Literal["deliver", "finish"]
    meter: str
    component: str
    campaign_id: int
    package_digest: str
    target_version: str
    activation: str | int
    lease_until: float
    order: str | None = Field(description="signed upgrade order, hex")


class ClaimResponse(BaseModel):
    jobs: list[JobOut]


class ReportIn(BaseModel):
    assignment_id: int = Field(ge=1, le=2**62)
    attempt: int = Field(ge=0, le=2**31)
    kind: Literal["progress", "running", "failed", "released"]
    state: Literal["offered", "transferring", "transferred", "verified", "scheduled",
                   "activated"] | None = None
    version: str | None = Field(default=None, min_length=1, max_length=64)
    code: str | None = Field(default=None, max_length=64)


class ReportsRequest(BaseModel):
    reports: list[ReportIn] = Field(max_length=MAX_REPORTS)


class ReportsResponse(BaseModel):
    applied: int
    ignored: int


def set_order_signer(app: Any, signer: OrderSigner | None) -> None:
    """Give the API the utility key that signs orders (else ``$AMIUP_UMS_ORDER_KEY``)."""
    app.state.order_signer = signer


def _signer(request: Request) -> OrderSigner:
    signer: OrderSigner | None = getattr(request.app.state, "order_signer", None)
    if signer is None:
        path = os.environ.get(ORDER_KEY_ENV)
        if not path:
            raise error("invalid-state", f"no order-signing key: set {ORDER_KEY_ENV} (SEC-3)")
        from pathlib import Path

        from amiup.trust.keys import load_private_key

        signer = OrderSigner(load_private_key(Path(path)))
        request.app.state.order_signer = signer
    return signer


@router.post("/claim", response_model=ClaimResponse)
def claim(body: ClaimRequest, request: Request,
          p: Annotated[Principal, Require("headend.work")], store: StoreDep,
          now: NowDep) -> ClaimResponse:
    """Hand this head-end up to ``max`` jobs under a lease (deliveries carry signed orders)."""
    sch = Scheduler(claimer=f"headend:{p.username}", signer=_signer(request),
                    lease_s=body.lease_s)
    with store.session() as db:
        jobs = sch.claim(db, now=now, limit=body.max)
    return ClaimResponse(jobs=[JobOut(**j.to_dict()) for j in jobs])


@router.post("/reports", response_model=ReportsResponse)
def reports(body: ReportsRequest, p: Annotated[Principal, Require("headend.work")],
            store: StoreDep, now: NowDep) -> ReportsResponse:
    """Apply what the head-end saw; reports on work it does not hold are ignored."""
    parsed: list[Report] = []
    for r in body.reports:
        if r.code is not None and r.code not in CODES:
            raise error("invalid-argument", f"unknown error code {r.code[:64]!r}")
        parsed.append(Report(r.assignment_id, r.attempt, r.kind, r.state, r.version, r.code))
    sch = Scheduler(claimer=f"headend:{p.username}")
    with store.session() as db:
        res = sch.apply(db, parsed, now=now, holder_only=True)
    return ReportsResponse(applied=res.count, ignored=res.ignored)


# ---------------------------------------------------------------------------- client side


class HeadEndClient:
    """Talks to a UMS's head-end API with a bearer token (httpx, synchronous)."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 30.0,
                 http: Any = None) -> None:
        """``http``: an ``httpx.Client`` to use instead (tests pass FastAPI's TestClient)."""
        import httpx

        self._http = http if http is not None else httpx.Client(
            base_url=base_url.rstrip("/"), timeout=timeout)
        self._headers = {"Authorization": f"Bearer {token}"}

    def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        import httpx

        try:
            r = self._http.post(path, json=payload, headers=self._headers)
        except httpx.TimeoutException as ex:
            raise error("timeout", f"UMS at {self._http.base_url}: {ex}") from ex
        except httpx.HTTPError as ex:
            raise error("unreachable", f"UMS at {self._http.base_url}: {ex}") from ex
        if r.status_code >= 400:
            try:
                problem = r.json()
                code = str(problem.get("code", ""))
                detail = str(problem.get("detail", ""))
            except ValueError:
                code, detail = "", r.text[:200]
            raise error(code if code in CODES else "unreachable",
                        f"UMS answered {r.status_code}: {detail}")
        data: dict[str, Any] = r.json()
        return data

    def claim(self, max_jobs: int = 100, lease_s: float = 300.0) -> list[Job]:
        data = self._post("/headend/claim", {"max": max_jobs, "lease_s": lease_s})
        return [Job.from_dict(j) for j in data["jobs"]]

    def report(self, reports: Sequence[Report]) -> tuple[int, int]:
        applied = ignored = 0
        for i in range(0, len(reports), MAX_REPORTS):
            data = self._post("/headend/reports",
                              {"reports": [r.to_dict() for r in reports[i : i + MAX_REPORTS]]})
            applied += int(data["applied"])
            ignored += int(data["ignored"])
        return applied, ignored

    def close(self) -> None:
        self._http.close()


def run_remote_headend(client: HeadEndClient, headend: HeadEnd, *, batch: int = 100,
                       lease_s: float = 300.0, clock: Callable[[], float] = time.time,
                       idle_sleep: float = 1.0, stop: Callable[[], bool] = lambda: False,
                       max_rounds: int | None = None) -> int:
    """The loop of ``amiup headend run``: claim, deliver, report; returns rounds run.

    A UMS that is briefly unreachable is waited for; reports not yet delivered are kept
    and sent again (they are idempotent on the UMS side).
    """
    rounds = 0
    backlog: list[Report] = []
    while not stop() and (max_rounds is None or rounds < max_rounds):
        rounds += 1
        now = clock()
        try:
            if backlog:
                client.report(backlog)
                backlog = []
            jobs = client.claim(batch, lease_s)
        except AmiupError as ex:
            if ex.code not in ("unreachable", "timeout", "store-error"):
                raise
            time.sleep(idle_sleep)
            continue
        if jobs:
            headend.submit(jobs, now)
        backlog.extend(headend.poll(clock()))
        if backlog:
            try:
                client.report(backlog)
                backlog = []
            except AmiupError as ex:
                if ex.code not in ("unreachable", "timeout", "store-error"):
                    raise
        if not jobs:
            time.sleep(idle_sleep)
    return rounds
