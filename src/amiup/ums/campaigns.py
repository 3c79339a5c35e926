"""Campaign lifecycle service: create, approve, start, pause, resume, cancel, retry, activate.

Every function takes the session, the acting :class:`~amiup.ums.auth.Principal` and ``now``
(keyword-only), checks the permission and the lifecycle table (:mod:`amiup.ums.states`),
writes with a conditional UPDATE on the state it read, and audits the change in the same
transaction. Lifecycle: draft -> approved -> running -> paused / halted -> completed /
cancelled.

Creation materializes the campaign: the target (meter ids, saved group, filter, fleet) is
resolved once, incompatible meters (vendor, model, hardware revision), meters already on the
version, and meters whose component is held by another active campaign (UMS-12) are set
aside and counted, the rest are planned into waves per cell, and one ``pending`` assignment
per meter is bulk-inserted in claim order. So the approver approves the exact list that will
run (a filter re-evaluated later could grow after approval), and a million-meter campaign is
created in seconds (executemany on SQLite, COPY on PostgreSQL; the store checks the
assignments' references once per statement, migration 0003).

Separation of duties (SEC-4, MET-4): every campaign needs approval by a user holding the
approver role who is not its creator; for metrology the approver role must be held
explicitly (no other role stands in), whatever the permission table grants.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import and_, exists, func, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from amiup.errors import error
from amiup.ums import audit, auth
from amiup.ums import states as st
from amiup.ums.auth import Principal
from amiup.ums.models import Assignment, Campaign, Meter, MeterComponent, Package, Wave
from amiup.ums.policy import Activation, GatePolicy, RetryPolicy
from amiup.ums.versions import try_key
from amiup.ums.waves import WaveSpec, plan_waves
from amiup.ums.windows import Calendar

CONFLICT_POLICIES = ("skip", "fail")


@dataclass(frozen=True, slots=True)
class CampaignSpec:
    """What an operator asks for; :func:`create_campaign` validates it before writing."""

    name: str
    package_id: int
    target: dict[str, Any]
    waves: dict[str, Any] = field(default_factory=dict)
    success_gate: float = 0.95
    failure_threshold: float = 0.05
    windows: Sequence[Any] = ()
    blackout_dates: Sequence[str] = ()
    timezone: str = "UTC"
    activation: dict[str, Any] = field(default_factory=lambda: {"mode": "now"})
    retry: dict[str, Any] = field(default_factory=dict)
    assignment_timeout_s: float = 7 * 86400.0
    deadline: float | None = None
    allow_downgrade: bool = False
    description: str = ""
    on_conflict: str = "skip"  # skip meters held by another campaign, or fail the creation


def _get(session: Session, campaign_id: int, *, lock: bool = False) -> Campaign:
    stmt = select(Campaign).where(Campaign.id == campaign_id)
    if lock and session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    row = session.execute(stmt).scalar_one_or_none()
    if row is None:
        raise error("not-found", f"campaign {campaign_id}")
    return row


def get_campaign(session: Session, *, campaign_id: int) -> Campaign:
    """One campaign or ``not-found``."""
    return _get(session, campaign_id)


# -------------------------------------------------------------------------- create


def create_campaign(
    session: Session, *, actor: Principal, spec: CampaignSpec, now: float
) -> Campaign:
    """Validate ``spec``, resolve the target, plan waves, insert assignments; state draft."""
    auth.require(actor, "campaign.create")
    if not spec.name.strip():
        raise error("invalid-argument", "campaign name is empty")
    if spec.on_conflict not in CONFLICT_POLICIES:
        raise error("invalid-argument", f"on_conflict must be one of {CONFLICT_POLICIES}")
    if spec.assignment_timeout_s <= 0:
        raise error("invalid-argument", "assignment timeout must be positive")
    pkg = session.get(Package, spec.package_id)
    if pkg is None:
        raise error("not-found", f"package {spec.package_id}")
    wave_spec = WaveSpec.from_dict(spec.waves)
    calendar = Calendar.build(spec.timezone, spec.windows, spec.blackout_dates)
    gate = GatePolicy(spec.success_gate, spec.failure_threshold)
    retry = RetryPolicy.from_dict(spec.retry)
    activation = Activation.from_dict(spec.activation)
    campaign = Campaign(
        name=spec.name.strip(),
        description=spec.description,
        package_id=pkg.id,
        component=pkg.component,
        metrology=bool(pkg.metrology or pkg.component == "metrology"),
        state=st.DRAFT,
        target=dict(spec.target),
        waves_plan=wave_spec.to_dict(),
        success_gate=gate.min_success_rate,
        failure_threshold=gate.max_failure_rate,
        windows=calendar.windows_json(),
        blackout_dates=calendar.blackouts_json(),
        timezone=calendar.tz,
        activation=activation.to_dict(),
        retry=retry.to_dict(),
        assignment_timeout_s=float(spec.assignment_timeout_s),
        deadline=spec.deadline,
        allow_downgrade=spec.allow_downgrade,
        created_by=actor.user_id,
        created_at=now,
        revision=0,
    )
    session.add(campaign)
    session.flush()
    resolved = _materialize(session, campaign, pkg, wave_spec, spec.on_conflict, now)
    campaign.target = {**dict(spec.target), "resolved": resolved}
    audit.record(
        session, at=now, actor=actor.username, action="campaign.create",
        object=f"campaign:{campaign.id}", after=_summary(campaign),
    )
    session.flush()
    return campaign


def _target_select(session: Session, target: dict[str, Any]) -> Any:
    """A SELECT of meter ids for the target, from the inventory module when it is there."""
    kind = target.get("kind")
    if kind not in ("meters", "group", "filter", "fleet"):
        raise error("invalid-argument", "target kind must be meters, group, filter or fleet")
    import importlib

    try:  # the inventory part is built in parallel; meters and fleet suffice without it
        inventory: Any = importlib.import_module("amiup.ums.inventory")
    except ImportError:
        inventory = None
    if inventory is not None and hasattr(inventory, "target_meter_ids"):
        return inventory.target_meter_ids(session, target)
    if kind == "meters":
        serials = target.get("meters") or []
        if not isinstance(serials, list) or not serials:
            raise error("invalid-argument", "target meters: a non-empty list of serials")
        return select(Meter.id).where(Meter.serial.in_([str(s) for s in serials]))
    if kind == "fleet":
        return select(Meter.id)
    raise error("invalid-argument", f"target kind {kind} needs the inventory module")


def _materialize(
    session: Session, campaign: Campaign, pkg: Package, wave_spec: WaveSpec,
    on_conflict: str, now: float,
) -> dict[str, int]:
    ids = _target_select(session, campaign.target).subquery()
    other = aliased(Assignment)
    busy = session.execute(
        select(other.id).where(other.component == pkg.component, other.state.in_(st.ACTIVE))
        .limit(1)
    ).first()
    # the per-meter UMS-12 probe is needed only when some campaign holds this component
    held: Any = exists().where(
        and_(other.meter_id == Meter.id, other.component == pkg.component,
             other.state.in_(st.ACTIVE))
    ) if busy else literal(False)
    # meters already on the version: one indexed query instead of a join per meter
    on_version = set(session.execute(
        select(MeterComponent.meter_id).where(
            MeterComponent.component == pkg.component,
            MeterComponent.running_key == try_key(pkg.version),
            MeterComponent.running_version == pkg.version)
    ).scalars())
    q = (
        select(Meter.id, Meter.cell, Meter.vendor, Meter.model, Meter.hw_rev, held)
        .order_by(Meter.id)
    )
    if campaign.target.get("kind") != "fleet":  # the whole fleet needs no membership test
        q = q.where(Meter.id.in_(select(ids.c[0])))
    hw_revs = set(pkg.hw_revs or [])
    p_vendor, p_model = pkg.vendor, pkg.model
    keep_ids: list[int] = []
    keep_cells: list[int] = []  # cell codes, numbered in order of first appearance
    cell_code: dict[str | None, int] = {}
    matched = incompatible = current = conflict = 0
    # Core execution, fetched at once (no ORM row processing, no per-row fetch): this loop
    # sees every target meter once.
    result = session.connection().execute(q)
    for mid, cell, vendor, model, hw_rev, is_held in result.cursor.fetchall():
        matched += 1
        if (vendor and vendor != p_vendor) or model != p_model or (
            hw_revs and hw_rev and hw_rev not in hw_revs
        ):
            incompatible += 1
        elif mid in on_version:
            current += 1
        elif is_held:
            conflict += 1
        else:
            keep_ids.append(mid)
            keep_cells.append(cell_code.setdefault(cell or "", len(cell_code)))
    counts = {"matched": matched, "incompatible": incompatible, "current": current,
              "conflict": conflict}
    if counts["conflict"] and on_conflict == "fail":
        raise error("conflict", f"{counts['conflict']} meters are in another active campaign "
                                f"for {pkg.component} (UMS-12)")
    if counts["matched"] == 0:
        raise error("invalid-argument", "the target matches no meter")
    plan = plan_waves(np.asarray(keep_cells, dtype=np.int64), wave_spec)
    wave_ids: list[int] = []
    for number, (name, size) in enumerate(zip(plan.names, plan.sizes, strict=True)):
        w = Wave(campaign_id=campaign.id, number=number, name=name, state="pending",
                 planned=size)
        session.add(w)
        session.flush()
        wave_ids.append(w.id)
    # claim order: the plan's order; assignment ids follow it (the scheduler claims by id)
    order = plan.order
    meter_ids = np.asarray(keep_ids, dtype=np.int64)[order]
    row_waves = np.asarray(wave_ids, dtype=np.int64)[plan.wave[order]]
    try:
        _bulk_insert_assignments(session, campaign.id, pkg.component, now, row_waves,
                                 meter_ids)
    except IntegrityError as ex:
        raise error("conflict", "another campaign took some of these meters meanwhile "
                                "(UMS-12), or one was deleted; try again") from ex
    counts["assigned"] = len(meter_ids)
    return counts


_COLS = ("campaign_id", "wave_id", "meter_id", "component", "state", "attempts",
         "created_at", "updated_at")
_COPY_CHUNK = 100_000  # rows per COPY write: bounded memory, few round trips


def _copy_text(value: str) -> str:
    """``value`` escaped for PostgreSQL's COPY text format."""
    return (value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
            .replace("\r", "\\r"))


def _bulk_insert_assignments(
    session: Session, campaign_id: int, component: str, now: float,
    wave_ids: npt.NDArray[np.int64], meter_ids: npt.NDArray[np.int64],
) -> None:
    """Insert one pending assignment per meter, in the given order (ids follow it).

    PostgreSQL: COPY in text format, each chunk formatted in one go (the columns other than
    wave and meter are the same on every row), so Python's share is well under a second
    per million rows; the store's share is the heap, the indexes and one statement-level
    reference check (migration 0003). SQLite: one executemany.
    """
    if len(meter_ids) == 0:
        return
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        import psycopg

        raw = conn.connection.dbapi_connection
        assert raw is not None
        head = f"{int(campaign_id)}\t"
        tail = f"\t{_copy_text(component)}\t{st.PENDING}\t0\t{now!r}\t{now!r}\n"
        sql = f"COPY assignments ({', '.join(_COLS)}) FROM STDIN"
        try:
            with raw.cursor() as cur, cur.copy(sql) as cp:  # type: ignore[attr-defined]
                for k in range(0, len(meter_ids), _COPY_CHUNK):
                    waves = wave_ids[k : k + _COPY_CHUNK].tolist()
                    meters = meter_ids[k : k + _COPY_CHUNK].tolist()
                    cp.write("".join([f"{head}{w}\t{m}{tail}"
                                      for w, m in zip(waves, meters, strict=True)]))
        except psycopg.IntegrityError as ex:
            # the raw cursor bypasses SQLAlchemy's wrapping; callers catch its class
            raise IntegrityError(sql, None, ex) from ex
        return
    rows = [(campaign_id, w, m, component, st.PENDING, 0, now, now)
            for w, m in zip(wave_ids.tolist(), meter_ids.tolist(), strict=True)]
    _sqlite_insert(conn, campaign_id, rows)


_SQLITE_REFS_TRIGGER = "assignments_refs_insert"  # migration 0003
_SQLITE_BAD_REFS = (  # the trigger's rules, once over the campaign's rows
    "SELECT a.id FROM assignments a WHERE a.campaign_id = :c AND ("
    "NOT EXISTS (SELECT 1 FROM meters m WHERE m.id = a.meter_id) "
    "OR NOT EXISTS (SELECT 1 FROM campaigns c WHERE c.id = a.campaign_id) "
    "OR (a.wave_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM waves w "
    "WHERE w.id = a.wave_id AND w.campaign_id = a.campaign_id))) LIMIT 1"
)


def _sqlite_insert(conn: Any, campaign_id: int, rows: list[tuple[Any, ...]]) -> None:
    """executemany, with the per-row reference trigger swapped for one set-based check.

    SQLite runs a trigger program per inserted row (about 20 us each here): it more than
    doubled a million-row insert. SQLite has one writer at a time and its DDL is
    transactional, so inside this write transaction the trigger is dropped, the rows go in,
    the same rules are checked once over this campaign's rows, and the trigger is put back
    before anything commits: no other writer ever sees the store without it, and a failure
    (or a crash) rolls the drop back with the rows.
    """
    from sqlalchemy import text

    trigger = conn.execute(
        text("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = :n"),
        {"n": _SQLITE_REFS_TRIGGER},
    ).scalar()
    marks = ", ".join("?" for _ in _COLS)
    sql = f"INSERT INTO assignments ({', '.join(_COLS)}) VALUES ({marks})"
    # Index maintenance dominates; a bigger page cache for this statement keeps the indexes
    # of a million-row insert in memory (the default 2 MiB cache thrashes).
    (old,) = conn.exec_driver_sql("PRAGMA cache_size").one()
    conn.exec_driver_sql(f"PRAGMA cache_size={-min(512 * 1024, max(2000, len(rows) // 4))}")
    if trigger:
        conn.exec_driver_sql(f"DROP TRIGGER {_SQLITE_REFS_TRIGGER}")
    try:
        conn.exec_driver_sql(sql, rows)
        bad = conn.execute(text(_SQLITE_BAD_REFS), {"c": campaign_id}).first()
        if bad is not None:
            import sqlite3

            raise IntegrityError(sql, None, sqlite3.IntegrityError(
                f"FOREIGN KEY constraint failed (assignment {bad[0]})"))
    finally:
        if trigger:  # IF NOT EXISTS: an error that ended the transaction already restored it
            conn.exec_driver_sql(trigger.replace("CREATE TRIGGER", "CREATE TRIGGER IF NOT EXISTS",
                                                 1))
        conn.exec_driver_sql(f"PRAGMA cache_size={int(old)}")


# -------------------------------------------------------------------------- lifecycle


def _summary(c: Campaign) -> dict[str, Any]:
    return {"id": c.id, "name": c.name, "state": c.state, "package_id": c.package_id,
            "component": c.component, "metrology": c.metrology, "revision": c.revision}


def _move(
    session: Session, campaign: Campaign, event: str, *, actor: str, now: float,
    reason: str = "", changes: dict[str, Any] | None = None,
) -> Campaign:
    """Apply a lifecycle event with a conditional UPDATE on the state read; audit it."""
    before = campaign.state
    after = st.campaign_next(before, event)
    if after is None:
        raise error("invalid-state", f"campaign {campaign.id} is {before}; cannot {event}")
    values: dict[str, Any] = {"state": after, "revision": Campaign.revision + 1,
                              **(changes or {})}
    if reason or event in ("pause", "resume", "cancel", "halt", "retry"):
        values["state_reason"] = reason
    if after in st.CAMPAIGN_FINAL:
        values["finished_at"] = now
    res = session.execute(
        update(Campaign)
        .where(Campaign.id == campaign.id, Campaign.state == before)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if res.rowcount != 1:  # type: ignore[attr-defined]
        raise error("conflict", f"campaign {campaign.id} changed meanwhile; reload and retry")
    session.refresh(campaign)
    audit.record(session, at=now, actor=actor, action=f"campaign.{event}",
                 object=f"campaign:{campaign.id}", before={"state": before},
                 after={"state": after, **({"reason": reason} if reason else {})})
    return campaign


def approve(session: Session, *, actor: Principal, campaign_id: int, now: float) -> Campaign:
    """draft -> approved, by an approver who is not the creator (SEC-4; MET-4 for metrology)."""
    auth.require(actor, "campaign.approve")
    c = _get(session, campaign_id, lock=True)
    auth.check_separation(c.created_by, actor.user_id)
    if c.metrology and "approver" not in actor.roles:
        raise error("forbidden", "a metrology campaign needs a user holding the approver role")
    return _move(session, c, "approve", actor=actor.username, now=now,
                 changes={"approved_by": actor.user_id, "approved_at": now})


def start(session: Session, *, actor: Principal, campaign_id: int, now: float) -> Campaign:
    """approved -> running; the first wave opens (its assignments become claimable)."""
    auth.require(actor, "campaign.launch")
    c = _get(session, campaign_id, lock=True)
    if c.approved_by is None or c.approved_by == c.created_by:
        raise error("invalid-state", f"campaign {c.id} has no valid approval")
    _move(session, c, "start", actor=actor.username, now=now, changes={"started_at": now})
    first = session.execute(
        select(Wave).where(Wave.campaign_id == c.id).order_by(Wave.number).limit(1)
    ).scalar_one_or_none()
    if first is not None:
        open_wave(session, wave=first, now=now, actor=actor.username)
    return c


def open_wave(session: Session, *, wave: Wave, now: float, actor: str) -> None:
    """pending -> running for one wave (conditional), audited."""
    res = session.execute(
        update(Wave).where(Wave.id == wave.id, Wave.state == "pending")
        .values(state="running", started_at=now)
        .execution_options(synchronize_session=False)
    )
    if res.rowcount == 1:  # type: ignore[attr-defined]
        audit.record(session, at=now, actor=actor, action="wave.open",
                     object=f"campaign:{wave.campaign_id}/wave:{wave.number}",
                     before={"state": "pending"}, after={"state": "running"})


def pause(session: Session, *, actor: Principal, campaign_id: int, now: float,
          reason: str = "") -> Campaign:
    """running -> paused: nothing new is handed out; deliveries in flight finish."""
    auth.require(actor, "campaign.control")
    return _move(session, _get(session, campaign_id, lock=True), "pause",
                 actor=actor.username, now=now, reason=reason)


def resume(session: Session, *, actor: Principal, campaign_id: int, now: float) -> Campaign:
    """paused / halted -> running. Resuming a halt acknowledges it: the halted wave passes."""
    auth.require(actor, "campaign.launch")
    c = _get(session, campaign_id, lock=True)
    was_halted = c.state == st.HALTED
    _move(session, c, "resume", actor=actor.username, now=now)
    if was_halted:
        _acknowledge_halt(session, c.id, now)
    return c


def _acknowledge_halt(session: Session, campaign_id: int, now: float) -> None:
    session.execute(
        update(Wave).where(Wave.campaign_id == campaign_id, Wave.state == "halted")
        .values(state="passed", finished_at=now)
        .execution_options(synchronize_session=False)
    )


def cancel(session: Session, *, actor: Principal, campaign_id: int, now: float,
           reason: str = "") -> Campaign:
    """Any non-final state -> cancelled; every active assignment is cancelled with it."""
    auth.require(actor, "campaign.control")
    c = _get(session, campaign_id, lock=True)
    _move(session, c, "cancel", actor=actor.username, now=now, reason=reason)
    res = session.execute(
        update(Assignment)
        .where(Assignment.campaign_id == c.id, Assignment.state.in_(st.ACTIVE))
        .values(state=st.CANCELLED, claimed_by=None, lease_until=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(Wave).where(Wave.campaign_id == c.id, Wave.state.in_(("pending", "running")))
        .values(state="cancelled", finished_at=now)
        .execution_options(synchronize_session=False)
    )
    audit.record(session, at=now, actor=actor.username, action="assignment.cancel",
                 object=f"campaign:{c.id}", after={"count": res.rowcount})  # type: ignore[attr-defined]
    return c


def retry_failed(session: Session, *, actor: Principal, campaign_id: int,
                 now: float) -> int:
    """Failed and expired assignments -> pending (attempts reset); halted/completed -> running.

    A meter whose component another campaign took meanwhile stays failed (UMS-12).
    Returns the number of assignments put back.
    """
    auth.require(actor, "campaign.control")
    c = _get(session, campaign_id, lock=True)
    if c.state not in (st.RUNNING, st.HALTED, st.COMPLETED, st.PAUSED):
        raise error("invalid-state", f"campaign {c.id} is {c.state}; cannot retry")
    other = aliased(Assignment)
    held = exists().where(
        and_(other.meter_id == Assignment.meter_id, other.component == Assignment.component,
             other.state.in_(st.ACTIVE))
    )
    res = session.execute(
        update(Assignment)
        .where(Assignment.campaign_id == c.id,
               Assignment.state.in_((st.FAILED, st.EXPIRED)), ~held)
        .values(state=st.PENDING, attempts=0, error_code=None, retriable=None,
                next_attempt_at=None, deadline=None, claimed_by=None, lease_until=None,
                updated_at=now)
        .execution_options(synchronize_session=False)
    )
    count = int(res.rowcount)  # type: ignore[attr-defined]
    if c.state in (st.HALTED, st.COMPLETED) and count:
        _move(session, c, "retry", actor=actor.username, now=now,
              changes={"finished_at": None})
        _acknowledge_halt(session, c.id, now)
    audit.record(session, at=now, actor=actor.username, action="assignment.retry",
                 object=f"campaign:{c.id}", after={"count": count})
    return count


def activate_now(session: Session, *, actor: Principal, campaign_id: int,
                 now: float) -> Campaign:
    """The later command of an on-command (or scheduled) activation: activate staged images."""
    auth.require(actor, "campaign.control")
    c = _get(session, campaign_id, lock=True)
    if c.state not in (st.RUNNING, st.PAUSED):
        raise error("invalid-state", f"campaign {c.id} is {c.state}; cannot activate")
    act = dict(c.activation or {})
    if act.get("commanded_at") is None:
        act["commanded_at"] = now
    res = session.execute(
        update(Campaign).where(Campaign.id == c.id, Campaign.revision == c.revision)
        .values(activation=act, revision=Campaign.revision + 1)
        .execution_options(synchronize_session=False)
    )
    if res.rowcount != 1:  # type: ignore[attr-defined]
        raise error("conflict", f"campaign {c.id} changed meanwhile; reload and retry")
    session.refresh(c)
    audit.record(session, at=now, actor=actor.username, action="campaign.activate",
                 object=f"campaign:{c.id}", after={"commanded_at": act["commanded_at"]})
    return c


# -------------------------------------------------------------------------- progress


def progress(session: Session, *, campaign_id: int) -> dict[str, Any]:
    """Counts per state, per wave, and the failure reasons (UMS-5)."""
    c = _get(session, campaign_id)
    by_state = {s: 0 for s in st.ASSIGNMENT_STATES}
    for state, n in session.execute(
        select(Assignment.state, func.count()).where(Assignment.campaign_id == c.id)
        .group_by(Assignment.state)
    ):
        by_state[state] = int(n)
    waves = []
    per_wave: dict[int | None, dict[str, int]] = {}
    for wid, state, n in session.execute(
        select(Assignment.wave_id, Assignment.state, func.count())
        .where(Assignment.campaign_id == c.id).group_by(Assignment.wave_id, Assignment.state)
    ):
        per_wave.setdefault(wid, {})[state] = int(n)
    for w in session.execute(
        select(Wave).where(Wave.campaign_id == c.id).order_by(Wave.number)
    ).scalars():
        waves.append({"number": w.number, "name": w.name, "state": w.state,
                      "planned": w.planned, "states": per_wave.get(w.id, {})})
    reasons = {
        code or "unknown": int(n)
        for code, n in session.execute(
            select(Assignment.error_code, func.count())
            .where(Assignment.campaign_id == c.id,
                   Assignment.state.in_((st.FAILED, st.EXPIRED)))
            .group_by(Assignment.error_code)
        )
    }
    total = sum(by_state.values())
    return {
        "campaign": c.id, "state": c.state, "reason": c.state_reason, "total": total,
        "states": by_state,
        "confirmed_fraction": (by_state[st.CONFIRMED] / total) if total else 0.0,
        "waves": waves, "failure_reasons": reasons,
        "resolved": (c.target or {}).get("resolved", {}),
    }


def failures(session: Session, *, campaign_id: int, offset: int = 0,
             limit: int = 100) -> list[dict[str, Any]]:
    """Failed and expired meters with their reason, paginated (UMS-5)."""
    rows = session.execute(
        select(Assignment.id, Meter.serial, Assignment.state, Assignment.error_code,
               Assignment.attempts, Assignment.updated_at)
        .join(Meter, Meter.id == Assignment.meter_id)
        .where(Assignment.campaign_id == campaign_id,
               Assignment.state.in_((st.FAILED, st.EXPIRED)))
        .order_by(Assignment.id).offset(offset).limit(limit)
    )
    return [{"assignment": a, "meter": s, "state": state, "code": code, "attempts": n,
             "at": at} for a, s, state, code, n, at in rows]
