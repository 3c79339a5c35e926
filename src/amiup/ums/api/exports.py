"""Routes of the reports: inventory, campaign and audit as CSV or JSON (UMS-11), streamed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import StreamingResponse

from amiup.ums import export
from amiup.ums.api.deps import Require, StoreDep
from amiup.ums.auth import Principal
from amiup.ums.store import Store

router = APIRouter(tags=["exports"])
Fmt = Annotated[Literal["csv", "json"], Query(description="csv or json")]
_MEDIA = {"csv": "text/csv; charset=utf-8", "json": "application/json"}
_DOC: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}, "application/json": {}}}}


def _stream(store: Store, kind: str, fmt: str, name: str, **kw: object) -> StreamingResponse:
    """Open a read session, fail early (404/400) before any byte, then stream chunks."""
    cm = store.session(readonly=True)
    db = cm.__enter__()
    try:
        chunks = export.render(db, kind, fmt, **kw)  # type: ignore[arg-type]
    except BaseException as exc:
        cm.__exit__(type(exc), exc, exc.__traceback__)
        raise

    def body() -> Iterator[str]:
        try:
            yield from chunks
        finally:
            cm.__exit__(None, None, None)

    return StreamingResponse(body(), media_type=_MEDIA[fmt], headers={
        "Content-Disposition": f'attachment; filename="{name}.{fmt}"'})


@router.get("/exports/inventory", response_class=StreamingResponse, responses=_DOC)
def export_inventory(_: Annotated[Principal, Require("export.inventory")], store: StoreDep,
                     format: Fmt = "csv",
                     filter: Annotated[str | None, Query(max_length=4096)] = None,
                     ) -> StreamingResponse:
    """Every meter (or those matching `filter`) with each component's versions."""
    return _stream(store, "inventory", format, "inventory", filter_expr=filter)


@router.get("/exports/campaigns/{campaign_id}", response_class=StreamingResponse,
            responses=_DOC)
def export_campaign(campaign_id: Annotated[int, Path(ge=1, le=2**62)],
                    _: Annotated[Principal, Require("export.campaign")], store: StoreDep,
                    format: Fmt = "csv") -> StreamingResponse:
    """One row per assignment: meter, wave, state, failure code and retries."""
    return _stream(store, "campaign", format, f"campaign-{campaign_id}",
                   campaign_id=campaign_id)


@router.get("/exports/audit", response_class=StreamingResponse, responses=_DOC)
def export_audit(_: Annotated[Principal, Require("export.audit")], store: StoreDep,
                 format: Fmt = "csv") -> StreamingResponse:
    """The whole audit trail with its hashes (re-verifiable offline)."""
    return _stream(store, "audit", format, "audit")
