"""The meter inventory (UMS-1, UMS-10, UMS-12): meters, their components, reports, groups.

The inventory is only ever moved by what the meters say: a signed status report that
answers the nonce the UMS issued (so a replayed or forged report is refused) sets each
component's running and staged version, anti-rollback sequence and the last contact. Upgrades
done at a meter's local port appear in that report and are reconciled here at the next
contact, each recorded as a ``field-upgrade`` event. Registration of meters (from a head-end
or an import) is the only other write.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sqlalchemy import ColumnElement, Integer, Select, bindparam, delete, func, insert, select
from sqlalchemy.orm import Session

from amiup.errors import error
from amiup.meter.report import StatusReport, verify_report
from amiup.trust import public_from_bytes
from amiup.ums import audit
from amiup.ums.filters import Cmp, Compiler, compile_filter, parse, static_condition
from amiup.ums.models import COMPONENTS, Group, GroupMember, Meter, MeterComponent, MeterEvent
from amiup.ums.versions import try_key

MAX_PAGE = 1000


# --------------------------------------------------------------------------- registration


def _set_component(session: Session, meter_id: int, component: str, *, running: str,
                   staged: str | None = None, security_seq: int = 0,
                   running_sha256: str | None = None, now: float) -> tuple[str, str]:
    """Upsert one component row; returns (old running version, new running version)."""
    if component not in COMPONENTS:
        raise error("invalid-argument", f"unknown component {component!r}")
    row = session.scalar(select(MeterComponent).where(
        MeterComponent.meter_id == meter_id, MeterComponent.component == component))
    if row is None:
        row = MeterComponent(meter_id=meter_id, component=component, running_version="",
                             updated_at=now)
        session.add(row)
    old = row.running_version
    row.running_version, row.running_key = running, try_key(running)
    row.staged_version, row.staged_key = staged, try_key(staged)
    row.security_seq = security_seq
    row.running_sha256 = running_sha256
    row.updated_at = now
    return old, running


def upsert_meter(session: Session, *, serial: str, model: str, now: float, actor: str,
                 vendor: str = "", hw_rev: str = "", region: str = "", cell: str = "",
                 groups: Sequence[str] = (), public_key_der: bytes | None = None,
                 components: Mapping[str, str] | None = None,
                 attributes: Mapping[str, Any] | None = None) -> Meter:
    """Register a meter or update its static facts (audited); components map name -> version."""
    if not serial or len(serial) > 64:
        raise error("invalid-argument", "serial: 1..64 characters")
    if public_key_der is not None:
        public_from_bytes(public_key_der)  # refuse a key we could never verify with
    meter = session.scalar(select(Meter).where(Meter.serial == serial))
    before = meter_facts(meter) if meter else None
    if meter is None:
        meter = Meter(serial=serial, model=model, created_at=now, attributes={}, groups=[])
        session.add(meter)
    meter.model, meter.vendor, meter.hw_rev = model, vendor, hw_rev
    meter.region, meter.cell, meter.groups = region, cell, list(groups)
    if public_key_der is not None:
        meter.public_key_der = public_key_der
    if attributes:
        meter.attributes = {**(meter.attributes or {}), **attributes}
    session.flush()
    for comp, version in (components or {}).items():
        _set_component(session, meter.id, comp, running=version, now=now)
    audit.record(session, at=now, actor=actor, action="meter.register" if before is None
                 else "meter.update", object=f"meter:{serial}", before=before,
                 after=meter_facts(meter) | {"components": dict(components or {})})
    return meter


def bulk_register(session: Session, meters: Iterable[Mapping[str, Any]], *, now: float,
                  actor: str, chunk: int = 5000) -> int:
    """Insert many new meters fast (fleet import, simulations): one audit row for the batch.

    Each mapping has ``serial``, ``model`` and optionally ``vendor``, ``hw_rev``, ``region``,
    ``cell``, ``groups``, ``public_key_der``, ``components`` ({name: version}).
    """
    total = 0
    batch: list[Mapping[str, Any]] = []

    def flush() -> None:
        nonlocal total
        if not batch:
            return
        rows = [{"serial": m["serial"], "model": m["model"], "vendor": m.get("vendor", ""),
                 "hw_rev": m.get("hw_rev", ""), "region": m.get("region", ""),
                 "cell": m.get("cell", ""), "groups": list(m.get("groups", ())),
                 "attributes": {}, "public_key_der": m.get("public_key_der"),
                 "order_counter": 0, "created_at": now} for m in batch]
        ids = session.execute(insert(Meter).returning(Meter.id, sort_by_parameter_order=True),
                              rows).scalars().all()
        comps = [{"meter_id": mid, "component": c, "running_version": v,
                  "running_key": try_key(v), "security_seq": 0, "updated_at": now}
                 for mid, m in zip(ids, batch, strict=True)
                 for c, v in (m.get("components") or {}).items()]
        if comps:
            session.execute(insert(MeterComponent), comps)
        total += len(batch)
        batch.clear()

    first = last = None
    for m in meters:
        first = first or m["serial"]
        last = m["serial"]
        batch.append(m)
        if len(batch) >= chunk:
            flush()
    flush()
    audit.record(session, at=now, actor=actor, action="meter.bulk_register",
                 object=f"meters:{first}..{last}", after={"count": total})
    return total


def meter_facts(m: Meter) -> dict[str, Any]:
    """The static facts of a meter (what registration sets)."""
    return {"serial": m.serial, "vendor": m.vendor, "model": m.model, "hw_rev": m.hw_rev,
            "region": m.region, "cell": m.cell, "groups": list(m.groups or [])}


def get_meter(session: Session, serial: str) -> Meter:
    """A meter by serial, or ``not-found``."""
    meter = session.scalar(select(Meter).where(Meter.serial == serial))
    if meter is None:
        raise error("not-found", f"no meter {serial[:64]!r}")
    return meter


def components_of(session: Session, meter_ids: Sequence[int]) -> dict[int, list[MeterComponent]]:
    """Component rows of several meters at once."""
    out: dict[int, list[MeterComponent]] = {i: [] for i in meter_ids}
    if meter_ids:
        for row in session.scalars(select(MeterComponent).where(
                MeterComponent.meter_id.in_(meter_ids)).order_by(MeterComponent.component)):
            out[row.meter_id].append(row)
    return out


def meter_dict(m: Meter, comps: Sequence[MeterComponent]) -> dict[str, Any]:
    """Public view of a meter and its components."""
    return meter_facts(m) | {
        "last_contact": m.last_contact,
        "components": {c.component: {"running": c.running_version, "staged": c.staged_version,
                                     "security_seq": c.security_seq} for c in comps},
    }


# --------------------------------------------------------------------------- status reports


def issue_nonce(session: Session, meter: Meter, *, nonce: bytes | None = None) -> bytes:
    """A fresh nonce the meter's next status report must carry (16 random bytes)."""
    value = nonce if nonce is not None else secrets.token_bytes(16)
    meter.report_nonce = value.hex()
    return value


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What a report changed: running versions before -> after, and new field upgrades."""

    meter_id: int
    serial: str
    changed: dict[str, tuple[str, str]] = field(default_factory=dict)
    field_upgrades: tuple[Any, ...] = ()
    report: StatusReport | None = None


def ingest_report(session: Session, data: bytes, *, now: float, actor: str) -> IngestResult:
    """Verify a signed status report against the meter's key and nonce, then apply it.

    Refused (and audited) with ``bad-signature``, ``report-replayed`` (no nonce outstanding,
    or another one), ``not-found`` (unknown meter). The nonce is consumed: the same report
    sent twice is refused the second time.
    """
    claimed = StatusReport.from_bytes(data)  # unverified: only to find the meter
    meter = get_meter(session, claimed.meter_id)
    if meter.public_key_der is None:
        raise error("unauthenticated", f"meter {meter.serial} has no registered key")
    if meter.report_nonce is None:
        raise error("report-replayed", f"no report is expected from {meter.serial}")
    report = verify_report(data, public_from_bytes(meter.public_key_der),
                           bytes.fromhex(meter.report_nonce))
    meter.report_nonce = None
    return apply_status(session, meter, report, now=now, actor=actor)


def apply_status(session: Session, meter: Meter, report: StatusReport, *, now: float,
                 actor: str) -> IngestResult:
    """Apply an already verified report: components, last contact, field upgrades (UMS-10)."""
    if report.meter_id != meter.serial:
        raise error("invalid-argument", "report is for another meter")
    changed: dict[str, tuple[str, str]] = {}
    for comp, st in report.components.items():
        if comp not in COMPONENTS:
            continue
        old, new = _set_component(
            session, meter.id, comp, running=st.running_version, staged=st.staged_version,
            security_seq=st.security_seq, running_sha256=st.running_sha256.hex(), now=now)
        if old != new:
            changed[comp] = (old, new)
    meter.last_contact = now
    attrs = dict(meter.attributes or {})
    seen = int(attrs.get("local_upgrade_seq", 0))
    fresh = tuple(u for u in sorted(report.local_upgrades, key=lambda u: u.seq) if u.seq > seen)
    events: list[audit.Event] = [audit.Event(
        now, actor, "meter.report", f"meter:{meter.serial}",
        after={"changed": {k: list(v) for k, v in changed.items()},
               "order_counter": report.order_counter})]
    for u in fresh:
        session.add(MeterEvent(meter_id=meter.id, at=now, kind="field-upgrade",
                               component=u.component, code=u.outcome,
                               data={"seq": u.seq, "time": u.time, "version": u.version,
                                     "tool_id": u.tool_id}))
        events.append(audit.Event(now, f"meter:{meter.serial}", "meter.field_upgrade",
                                  f"meter:{meter.serial}",
                                  after={"component": u.component, "version": u.version,
                                         "tool_id": u.tool_id, "seq": u.seq},
                                  outcome="ok" if u.outcome in ("ok", "committed")
                                  else u.outcome))
    if fresh:
        attrs["local_upgrade_seq"] = fresh[-1].seq
        meter.attributes = attrs
    session.add(MeterEvent(meter_id=meter.id, at=now, kind="status", data={
        "changed": {k: list(v) for k, v in changed.items()}}))
    audit.record_many(session, events)
    return IngestResult(meter.id, meter.serial, changed, fresh, report)


# --------------------------------------------------------------------------- queries


_LIST_COLUMNS = (Meter.id, Meter.serial, Meter.vendor, Meter.model, Meter.hw_rev, Meter.region,
                 Meter.cell, Meter.groups, Meter.last_contact)


def _list_statements(cond: ColumnElement[bool]) -> tuple[Select[Any], Select[Any]]:
    """(page with components, count) for a condition; limit/offset are bound parameters."""
    pg = (select(*_LIST_COLUMNS).where(cond).order_by(Meter.id)
          .limit(bindparam("page_limit", type_=Integer))
          .offset(bindparam("page_offset", type_=Integer)).subquery())
    page = (select(pg, MeterComponent.component, MeterComponent.running_version,
                   MeterComponent.staged_version, MeterComponent.security_seq)
            .outerjoin(MeterComponent, MeterComponent.meter_id == pg.c.id)
            .order_by(pg.c.id, MeterComponent.component))
    return page, select(func.count()).select_from(Meter).where(cond)


@lru_cache(maxsize=256)
def _cached_statements(filter_expr: str | None) -> tuple[Select[Any], Select[Any]] | None:
    cond = static_condition(filter_expr)
    return None if cond is None else _list_statements(cond)


def query(session: Session, *, filter_expr: str | None = None, limit: int = 100,
          offset: int = 0) -> tuple[int, list[dict[str, Any]]]:
    """(total, page) of meters matching a filter, in registration order (id: index-friendly).

    Listing is the API's hottest path, so it avoids what costs more than the read itself:
    statements are built once per filter text (unless it names a group, whose definition
    lives in the store), the page and its components come in one statement, rows are plain
    tuples through the session's connection rather than ORM objects, and the count is skipped
    when the first page already holds every match.
    """
    stmts = _cached_statements(filter_expr)
    if stmts is None:
        stmts = _list_statements(compile_filter(filter_expr, session))
    page_stmt, count_stmt = stmts
    conn = session.connection()
    limit = min(limit, MAX_PAGE)
    rows = conn.execute(page_stmt, {"page_limit": limit, "page_offset": offset}).all()
    out: list[dict[str, Any]] = []
    last = None
    comps: dict[str, Any] = {}
    for (mid, serial, vendor, model, hw_rev, region, cell, groups, last_contact,
         comp, running, staged, seq) in rows:
        if mid != last:
            last, comps = mid, {}
            out.append({"serial": serial, "vendor": vendor, "model": model, "hw_rev": hw_rev,
                        "region": region, "cell": cell, "groups": list(groups or []),
                        "last_contact": last_contact, "components": comps})
        if comp is not None:
            comps[comp] = {"running": running, "staged": staged, "security_seq": seq}
    if offset == 0 and len(out) < limit:
        return len(out), out  # the page holds every match: no need to count again
    return conn.execute(count_stmt).scalar() or 0, out


def target_meter_ids(session: Session, target: Mapping[str, Any]) -> Select[int]:
    """``SELECT meters.id`` for a campaign target (UMS-3).

    ``{"kind": "meters", "meters": [serial...]}``, ``{"kind": "group", "group": name}``,
    ``{"kind": "filter", "filter": expr}`` or ``{"kind": "fleet"}``.
    """
    kind = target.get("kind")
    stmt = select(Meter.id)
    if kind == "fleet":
        return stmt
    if kind == "meters":
        serials = [str(s) for s in target.get("meters") or []]
        if not serials:
            raise error("invalid-argument", "target lists no meters")
        return stmt.where(Meter.serial.in_(serials))
    if kind == "group":
        name = str(target.get("group") or "")
        return stmt.where(in_group(session, name))
    if kind == "filter":
        return stmt.where(compile_filter(str(target.get("filter") or ""), session))
    raise error("invalid-argument", "target kind must be meters, group, filter or fleet")


# --------------------------------------------------------------------------- groups


def create_group(session: Session, *, name: str, now: float, actor: str,
                 filter_expr: str | None = None, members: Sequence[str] = (),
                 description: str = "") -> Group:
    """Save a group: a filter (``filter_expr``) or a fixed list of serials (audited)."""
    if not name or len(name) > 128:
        raise error("invalid-argument", "group name: 1..128 characters")
    if session.scalar(select(Group.id).where(Group.name == name)) is not None:
        raise error("conflict", f"group {name!r} exists")
    if filter_expr is not None:
        if members:
            raise error("invalid-argument", "a group is a filter or a member list, not both")
        parse(filter_expr)
        compile_filter(filter_expr, session)  # groups it names must exist
    g = Group(name=name, kind="filter" if filter_expr is not None else "static",
              filter_expr=filter_expr, description=description, created_by=actor,
              created_at=now)
    session.add(g)
    session.flush()
    added = set_members(session, g, members, add=True) if members else 0
    audit.record(session, at=now, actor=actor, action="group.create", object=f"group:{name}",
                 after={"kind": g.kind, "filter": filter_expr, "members": added})
    return g


def set_members(session: Session, group: Group, serials: Sequence[str], *, add: bool) -> int:
    """Add or remove meters (by serial) from a static group; returns how many rows changed."""
    if group.kind != "static":
        raise error("invalid-argument", f"group {group.name!r} is a filter group")
    ids = session.execute(select(Meter.id, Meter.serial).where(Meter.serial.in_(serials))).all()
    missing = set(serials) - {s for _, s in ids}
    if missing:
        raise error("not-found", f"no meter(s) {sorted(missing)[:5]}")
    if add:
        have = set(session.scalars(select(GroupMember.meter_id).where(
            GroupMember.group_id == group.id, GroupMember.meter_id.in_([i for i, _ in ids]))))
        new = [{"group_id": group.id, "meter_id": i} for i, _ in ids if i not in have]
        if new:
            session.execute(insert(GroupMember), new)
        return len(new)
    res = session.execute(delete(GroupMember).where(
        GroupMember.group_id == group.id, GroupMember.meter_id.in_([i for i, _ in ids])))
    return int(getattr(res, "rowcount", 0) or 0)


def in_group(session: Session, name: str) -> ColumnElement[bool]:
    """Condition on ``Meter``: member of the saved group ``name`` (static or filter)."""
    return Compiler(session).compile(Cmp("group", "=", (name,)))


def get_group(session: Session, name: str) -> Group:
    """A group by name, or ``not-found``."""
    g = session.scalar(select(Group).where(Group.name == name))
    if g is None:
        raise error("not-found", f"no group {name[:128]!r}")
    return g


def group_dict(session: Session, g: Group) -> dict[str, Any]:
    """Public view of a group, with its current size."""
    size = session.scalar(select(func.count()).select_from(Meter).where(in_group(session, g.name)))
    return {"name": g.name, "kind": g.kind, "filter": g.filter_expr,
            "description": g.description, "created_by": g.created_by,
            "created_at": g.created_at, "size": size}
