"""Reports as CSV or JSON (UMS-11): inventory, one campaign's assignments, the audit trail.

Rows are streamed in batches (``yield_per``) and rendered chunk by chunk, so exporting a
million meters never holds them all in memory. CSV has a header row and one flat row per
record; JSON is one array of objects. The audit export carries ``prev_hash`` and ``hash``,
so a copy can be re-verified offline with the same rule as ``amiup ums audit verify``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from amiup.errors import error
from amiup.ums import audit
from amiup.ums.filters import compile_filter
from amiup.ums.models import (
    COMPONENTS,
    Assignment,
    AuditEntry,
    Campaign,
    Meter,
    MeterComponent,
    Wave,
)

Format = Literal["csv", "json"]
KINDS = ("inventory", "campaign", "audit")
BATCH = 2000

INVENTORY_FIELDS = ["serial", "vendor", "model", "hw_rev", "region", "cell", "last_contact"] + [
    f"{c}.{a}" for c in COMPONENTS for a in ("running", "staged", "security_seq")
]
CAMPAIGN_FIELDS = ["campaign_id", "serial", "cell", "component", "wave", "state", "error_code",
                   "retriable", "attempts", "next_attempt_at", "deadline", "updated_at",
                   "confirmed_at"]
AUDIT_FIELDS = ["seq", "at", "actor", "action", "object", "before", "after", "outcome",
                "prev_hash", "hash"]


def inventory_rows(session: Session, filter_expr: str | None = None) -> Iterator[dict[str, Any]]:
    """One flat row per meter matching ``filter_expr``, components as ``comp.attr`` columns."""
    cond = compile_filter(filter_expr, session)
    meters = session.execute(select(Meter).where(cond).order_by(Meter.id)
                             .execution_options(yield_per=BATCH)).scalars()
    batch: list[Meter] = []
    for m in meters:
        batch.append(m)
        if len(batch) >= BATCH:
            yield from _inventory_batch(session, batch)
            batch = []
    yield from _inventory_batch(session, batch)


def _inventory_batch(session: Session, batch: Sequence[Meter]) -> Iterator[dict[str, Any]]:
    if not batch:
        return
    comps: dict[int, list[MeterComponent]] = {m.id: [] for m in batch}
    for c in session.scalars(select(MeterComponent).where(
            MeterComponent.meter_id.in_(list(comps)))):
        comps[c.meter_id].append(c)
    for m in batch:
        row: dict[str, Any] = {"serial": m.serial, "vendor": m.vendor, "model": m.model,
                               "hw_rev": m.hw_rev, "region": m.region, "cell": m.cell,
                               "last_contact": m.last_contact}
        for c in comps[m.id]:
            row[f"{c.component}.running"] = c.running_version
            row[f"{c.component}.staged"] = c.staged_version
            row[f"{c.component}.security_seq"] = c.security_seq
        yield row


def campaign_rows(session: Session, campaign_id: int) -> Iterator[dict[str, Any]]:
    """One row per assignment of a campaign: meter, wave, state, failure reason (UMS-5)."""
    if session.get(Campaign, campaign_id) is None:
        raise error("not-found", f"no campaign {campaign_id}")
    stmt = (select(Assignment, Meter.serial, Meter.cell, Wave.number)
            .join(Meter, Meter.id == Assignment.meter_id)
            .outerjoin(Wave, Wave.id == Assignment.wave_id)
            .where(Assignment.campaign_id == campaign_id).order_by(Assignment.id)
            .execution_options(yield_per=BATCH))
    for a, serial, cell, wave in session.execute(stmt):
        yield {"campaign_id": campaign_id, "serial": serial, "cell": cell,
               "component": a.component, "wave": wave, "state": a.state,
               "error_code": a.error_code, "retriable": a.retriable, "attempts": a.attempts,
               "next_attempt_at": a.next_attempt_at, "deadline": a.deadline,
               "updated_at": a.updated_at, "confirmed_at": a.confirmed_at}


def audit_rows(session: Session, *, since_seq: int = 0) -> Iterator[dict[str, Any]]:
    """The audit trail in chain order, hashes included."""
    stmt = (select(AuditEntry).where(AuditEntry.seq > since_seq).order_by(AuditEntry.seq)
            .execution_options(yield_per=BATCH))
    for row in session.scalars(stmt):
        yield audit.entry_dict(row)


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return value


def render_csv(rows: Iterable[dict[str, Any]], fields: Sequence[str]) -> Iterator[str]:
    """CSV text in chunks: a header, then one line per row (missing fields empty)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields), extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    for n, row in enumerate(rows, 1):
        writer.writerow({k: _cell(row.get(k)) for k in fields})
        if n % 500 == 0:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


def render_json(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    """A JSON array in chunks, one object per row."""
    yield "["
    first = True
    for row in rows:
        yield ("" if first else ",\n") + json.dumps(row, sort_keys=True, ensure_ascii=False)
        first = False
    yield "]\n"


def render(session: Session, kind: str, fmt: str, *, filter_expr: str | None = None,
           campaign_id: int | None = None) -> Iterator[str]:
    """The export ``kind`` (inventory | campaign | audit) as ``fmt`` (csv | json) text chunks."""
    if fmt not in ("csv", "json"):
        raise error("invalid-argument", "format must be csv or json")
    rows: Iterator[dict[str, Any]]
    if kind == "inventory":
        rows, fields = inventory_rows(session, filter_expr), INVENTORY_FIELDS
    elif kind == "campaign":
        if campaign_id is None:
            raise error("invalid-argument", "campaign export needs a campaign id")
        rows, fields = campaign_rows(session, campaign_id), CAMPAIGN_FIELDS
    elif kind == "audit":
        rows, fields = audit_rows(session), AUDIT_FIELDS
    else:
        raise error("invalid-argument", f"export kind must be one of {', '.join(KINDS)}")
    first = next(rows, None)  # surface not-found / filter errors before any output
    chained = rows if first is None else _prepend(first, rows)
    return render_csv(chained, fields) if fmt == "csv" else render_json(chained)


def _prepend(first: dict[str, Any], rest: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    yield first
    yield from rest
