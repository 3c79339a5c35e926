"""The durable scheduler: hand out work under a lease, apply head-end reports, run the gates.

Three operations, each one short transaction, each safe to repeat and to run in several
processes at once:

* :meth:`Scheduler.claim` picks claimable assignments (running campaign, open wave, delivery
  window open, retry time reached) in claim order (round-robin over cells), and moves them
  ``pending -> offered`` with ``UPDATE ... WHERE id IN (...) AND state = 'pending'``, a lease
  and a freshly signed upgrade order (SEC-3). On PostgreSQL the candidates are selected
  ``FOR UPDATE SKIP LOCKED``, so several workers never hand out the same assignment.
* :meth:`Scheduler.apply` takes head-end reports ("reached S", "version V runs", "failed with
  C", "released") and applies each as a conditional update on the state it read. A report
  can only move an assignment forward, and ``confirmed`` needs the target version read back
  from the meter (UMS-8): the end of a transfer or an activation never confirms.
* :meth:`Scheduler.tick` does what time does: leases that ran out (the head-end or worker
  died) go back to ``pending`` through the retry policy, deadlines turn active assignments
  into ``expired`` (UMS-9, hawkBit #693), wave gates advance or halt campaigns (UMS-7), and
  campaigns whose assignments are all final complete.

Crash safety: a state change and its audit row commit together; anything a dead worker had
claimed comes back when its lease ends (or at once, when a worker restarts under the same
id: :meth:`Scheduler.recover`). A redelivery starts by reading the meter's status, so an
image that was already activated is confirmed, not activated again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Table, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.orm import Session

from amiup.errors import error
from amiup.ums import audit
from amiup.ums import states as st
from amiup.ums.models import Assignment, Campaign, Meter, MeterComponent, MeterEvent, Package, Wave
from amiup.ums.policy import Activation, GatePolicy, GiveUp, RetryPolicy, WaveCounts
from amiup.ums.versions import try_key
from amiup.ums.windows import Calendar

JobKind = Literal["deliver", "finish"]
ReportKind = Literal["progress", "running", "failed", "released"]
ORDER_SKEW_S = 300  # orders are valid from a little before they are signed (meter clocks)


@dataclass(frozen=True, slots=True)
class Job:
    """One piece of work for a head-end: deliver a package, or finish (activate, read back)."""

    assignment_id: int
    attempt: int
    kind: JobKind
    meter: str  # serial: the id the order names
    component: str
    campaign_id: int
    package_digest: str  # hex; the catalog file is found under it
    target_version: str
    activation: str | int  # "now" | "on-command" | unix time
    lease_until: float
    order: bytes | None = None  # signed upgrade order (deliver jobs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "assignment_id": self.assignment_id, "attempt": self.attempt, "kind": self.kind,
            "meter": self.meter, "component": self.component, "campaign_id": self.campaign_id,
            "package_digest": self.package_digest, "target_version": self.target_version,
            "activation": self.activation, "lease_until": self.lease_until,
            "order": self.order.hex() if self.order is not None else None,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Job:
        order = d.get("order")
        return cls(int(d["assignment_id"]), int(d["attempt"]), d["kind"], str(d["meter"]),
                   str(d["component"]), int(d["campaign_id"]), str(d["package_digest"]),
                   str(d["target_version"]), d["activation"], float(d["lease_until"]),
                   bytes.fromhex(order) if order else None)


@dataclass(frozen=True, slots=True)
class Report:
    """What a head-end saw for one assignment.

    ``progress``: the meter reached ``state`` (one of :data:`states.REPORTABLE`).
    ``running``: the meter says ``version`` runs for the component (a read-back; ``code`` is
    the meter's reason when it reverted). ``failed``: the attempt failed with ``code``.
    ``released``: the head-end is done with the job without a final outcome (image staged,
    activation later).
    """

    assignment_id: int
    attempt: int
    kind: ReportKind
    state: str | None = None
    version: str | None = None
    code: str | None = None

    def __post_init__(self) -> None:
        if self.kind == "progress" and self.state not in st.REPORTABLE:
            raise error("invalid-argument", f"progress state {self.state!r} is not reportable")
        if self.kind == "running" and not self.version:
            raise error("invalid-argument", "a running report needs the version")
        if self.kind == "failed" and not self.code:
            raise error("invalid-argument", "a failed report needs a code")
        if self.kind not in ("progress", "running", "failed", "released"):
            raise error("invalid-argument", f"unknown report kind {self.kind!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"assignment_id": self.assignment_id, "attempt": self.attempt,
                "kind": self.kind, "state": self.state, "version": self.version,
                "code": self.code}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Report:
        return cls(int(d["assignment_id"]), int(d["attempt"]), d["kind"], d.get("state"),
                   d.get("version"), d.get("code"))


class OrderSigner:
    """Signs upgrade orders with the utility's UMS key (SEC-3)."""

    def __init__(self, key: Any, *, issuer: str = "amiup-ums", validity_s: int = 7 * 86400):
        self.key = key
        self.issuer = issuer
        self.validity_s = validity_s

    def sign(self, *, package_digest: str, meter: str, counter: int, activation: str | int,
             allow_downgrade: bool, now: float) -> bytes:
        from amiup.package.order import UpgradeOrder, sign_order

        order = UpgradeOrder(
            package_digest=bytes.fromhex(package_digest), targets=(meter,),
            not_before=int(now) - ORDER_SKEW_S, not_after=int(now) + self.validity_s,
            counter=counter, activation=activation, allow_downgrade=allow_downgrade,
            issuer=self.issuer,
        )
        return sign_order(order, self.key)


@dataclass(slots=True)
class TickResult:
    """What a tick changed (for logs, tests and benches)."""

    lease_lost: int = 0
    expired: int = 0
    advanced: list[tuple[int, int]] = field(default_factory=list)  # (campaign, wave number)
    halted: list[int] = field(default_factory=list)
    completed: list[int] = field(default_factory=list)


@dataclass(slots=True)
class ApplyResult:
    """Transitions that :meth:`Scheduler.apply` made, by (from, to)."""

    transitions: dict[tuple[str, str], int] = field(default_factory=dict)
    ignored: int = 0

    def add(self, a: str, b: str, n: int = 1) -> None:
        self.transitions[(a, b)] = self.transitions.get((a, b), 0) + n

    @property
    def count(self) -> int:
        return sum(self.transitions.values())


@dataclass(frozen=True, slots=True)
class _Camp:
    """What the scheduler needs of a running campaign, read once per call."""

    id: int
    state: str
    calendar: Calendar
    activation: Activation
    commanded: bool
    retry: RetryPolicy
    gate: GatePolicy
    timeout_s: float
    deadline: float | None
    digest: str
    version: str
    component: str
    allow_downgrade: bool


def _camp(c: Campaign, pkg: Package) -> _Camp:
    act = c.activation or {}
    return _Camp(
        c.id, c.state, Calendar.build(c.timezone, c.windows or [], c.blackout_dates or []),
        Activation.from_dict(act), act.get("commanded_at") is not None,
        RetryPolicy.from_dict(c.retry), GatePolicy(c.success_gate, c.failure_threshold),
        c.assignment_timeout_s, c.deadline, pkg.digest, pkg.version, c.component,
        c.allow_downgrade,
    )


class Scheduler:
    """Claims, applies and ticks for one worker identity (``claimer``)."""

    def __init__(self, *, claimer: str, signer: OrderSigner | None = None,
                 lease_s: float = 300.0, expire_interval_s: float = 10.0) -> None:
        if lease_s <= 0:
            raise error("invalid-argument", "lease must be positive")
        self.claimer = claimer
        self.signer = signer
        self.lease_s = lease_s
        # deadlines are minutes to days: looking for expired work every few seconds is enough
        self.expire_interval_s = expire_interval_s
        self._last_expire: float | None = None

    # ---------------------------------------------------------------- campaigns in play

    def _campaigns(self, session: Session, ids: Iterable[int] | None = None,
                   states: Sequence[str] = (st.RUNNING,)) -> dict[int, _Camp]:
        q = select(Campaign, Package).join(Package, Package.id == Campaign.package_id)
        q = q.where(Campaign.id.in_(list(ids))) if ids is not None else \
            q.where(Campaign.state.in_(states))
        return {c.id: _camp(c, p) for c, p in session.execute(q)}

    # ---------------------------------------------------------------- claim

    def claim(self, session: Session, *, now: float, limit: int = 500) -> list[Job]:
        """Hand out up to ``limit`` jobs under a lease; the caller commits."""
        camps = self._campaigns(session)
        if not camps or limit <= 0:
            return []
        open_waves = [
            wid for (wid,) in session.execute(
                select(Wave.id).where(Wave.campaign_id.in_(list(camps)),
                                      Wave.state.in_(("running", "passed")))
            )
        ]
        if not open_waves:
            return []
        deliverable = [c.id for c in camps.values()
                       if c.calendar.is_open(now) and (c.deadline is None or now < c.deadline)]
        finishable = [c.id for c in camps.values() if c.activation.due(now, c.commanded)]
        jobs: list[Job] = []
        if deliverable:
            jobs += self._claim_deliver(session, camps, deliverable, open_waves, now, limit)
        if finishable and len(jobs) < limit:
            jobs += self._claim_finish(session, camps, finishable, open_waves, now,
                                       limit - len(jobs))
        return jobs

    def _lock(self, session: Session, q: Any) -> Any:
        if session.get_bind().dialect.name == "postgresql":
            return q.with_for_update(skip_locked=True, of=Assignment)
        return q

    def _claim_deliver(self, session: Session, camps: dict[int, _Camp], campaign_ids: list[int],
                       waves: list[int], now: float, limit: int) -> list[Job]:
        q = (
            select(Assignment.id)
            .where(Assignment.campaign_id.in_(campaign_ids), Assignment.state == st.PENDING,
                   Assignment.wave_id.in_(waves),
                   or_(Assignment.next_attempt_at.is_(None), Assignment.next_attempt_at <= now))
            .order_by(Assignment.id).limit(limit)
        )
        ids = [i for (i,) in session.execute(self._lock(session, q))]
        if not ids:
            return []
        lease = now + self.lease_s
        timeout = (
            select(Campaign.assignment_timeout_s)
            .where(Campaign.id == Assignment.campaign_id).scalar_subquery()
        )
        rows = session.execute(
            update(Assignment)
            .where(Assignment.id.in_(ids), Assignment.state == st.PENDING)
            .values(state=st.OFFERED, claimed_by=self.claimer, lease_until=lease,
                    attempts=Assignment.attempts + 1, updated_at=now,
                    deadline=func.coalesce(Assignment.deadline, now + timeout))
            .returning(Assignment.id, Assignment.meter_id, Assignment.attempts,
                       Assignment.campaign_id)
            .execution_options(synchronize_session=False)
        ).all()
        if not rows:
            return []
        counters = self._next_counters(session, [r[1] for r in rows])
        jobs = []
        for (aid, _mid, attempt, cid), (serial, counter) in zip(rows, counters, strict=True):
            c = camps[cid]
            act = c.activation.order_value()
            order = None
            if self.signer is not None:
                order = self.signer.sign(package_digest=c.digest, meter=serial, counter=counter,
                                         activation=act, allow_downgrade=c.allow_downgrade,
                                         now=now)
            jobs.append(Job(aid, attempt, "deliver", serial, c.component, cid, c.digest,
                            c.version, act, lease, order))
        self._audit_moves(session, now, {(st.PENDING, st.OFFERED): [(j.campaign_id,
                                                                    j.assignment_id)
                                                                   for j in jobs]})
        return jobs

    def _next_counters(self, session: Session, meter_ids: list[int]) -> list[tuple[str, int]]:
        """Bump each meter's order counter once per order (monotonic per meter: anti-replay)."""
        out: dict[int, list[tuple[str, int]]] = defaultdict(list)
        remaining = list(meter_ids)
        while remaining:
            batch = list(dict.fromkeys(remaining))  # one bump per meter per statement
            for mid, serial, counter in session.execute(
                update(Meter).where(Meter.id.in_(batch))
                .values(order_counter=Meter.order_counter + 1)
                .returning(Meter.id, Meter.serial, Meter.order_counter)
                .execution_options(synchronize_session=False)
            ):
                out[mid].append((serial, counter))
            for mid in batch:
                remaining.remove(mid)
        taken: dict[int, int] = defaultdict(int)
        result = []
        for mid in meter_ids:
            result.append(out[mid][taken[mid]])
            taken[mid] += 1
        return result

    def _claim_finish(self, session: Session, camps: dict[int, _Camp], campaign_ids: list[int],
                      waves: list[int], now: float, limit: int) -> list[Job]:
        """Staged images whose activation is due, and activations not yet read back."""
        q = (
            select(Assignment.id)
            .where(Assignment.campaign_id.in_(campaign_ids),
                   Assignment.state.in_((st.VERIFIED, st.SCHEDULED, st.ACTIVATED)),
                   Assignment.wave_id.in_(waves), Assignment.claimed_by.is_(None))
            .order_by(Assignment.id).limit(limit)
        )
        ids = [i for (i,) in session.execute(self._lock(session, q))]
        if not ids:
            return []
        lease = now + self.lease_s
        rows = session.execute(
            update(Assignment)
            .where(Assignment.id.in_(ids), Assignment.claimed_by.is_(None),
                   Assignment.state.in_((st.VERIFIED, st.SCHEDULED, st.ACTIVATED)))
            .values(claimed_by=self.claimer, lease_until=lease, updated_at=now)
            .returning(Assignment.id, Assignment.meter_id, Assignment.attempts,
                       Assignment.campaign_id)
            .execution_options(synchronize_session=False)
        ).all()
        serials: dict[int, str] = {
            mid: serial for mid, serial in session.execute(
                select(Meter.id, Meter.serial).where(Meter.id.in_([r[1] for r in rows]))
            )
        }
        jobs = []
        for aid, mid, attempt, cid in rows:
            c = camps[cid]
            jobs.append(Job(aid, attempt, "finish", serials[mid], c.component, cid, c.digest,
                            c.version, c.activation.order_value(), lease))
        return jobs

    # ---------------------------------------------------------------- apply

    def apply(self, session: Session, reports: Sequence[Report], *, now: float,
              actor: str | None = None, holder_only: bool = False) -> ApplyResult:
        """Apply head-end reports as conditional transitions; the caller commits.

        ``holder_only``: ignore reports on assignments this claimer does not hold (remote
        head-ends may only move their own work).
        """
        result = ApplyResult()
        if not reports:
            return result
        ids = sorted({r.assignment_id for r in reports})
        q = select(Assignment.id, Assignment.state, Assignment.attempts, Assignment.campaign_id,
                   Assignment.meter_id, Assignment.component).where(Assignment.id.in_(ids))
        if holder_only:
            q = q.where(Assignment.claimed_by == self.claimer)
        if session.get_bind().dialect.name == "postgresql":
            q = q.with_for_update()
        rows: dict[int, list[Any]] = {
            r[0]: [r[1], r[2], r[3], r[4], r[5]] for r in session.execute(q)
        }
        camps = self._campaigns(session, {r[2] for r in rows.values()})
        # Reports on one assignment in one batch coalesce into one conditional write, guarded
        # by the state read above; every intermediate transition is still audited.
        writes: dict[int, dict[str, Any]] = {}
        moves: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
        events: list[dict[str, Any]] = []
        confirmed: dict[tuple[int, str], list[int]] = defaultdict(list)
        for rep in reports:
            row = rows.get(rep.assignment_id)
            if row is None:
                result.ignored += 1
                continue
            state, attempts, cid, mid, component = row
            c = camps[cid]
            new: str | None = None
            values: dict[str, Any] = {}
            if state not in st.ACTIVE:
                new = None  # final already: late and duplicate reports change nothing
            elif rep.kind == "progress":
                assert rep.state is not None
                if state in st.reach_sources(rep.state):
                    new = rep.state
                    values = {"lease_until": now + self.lease_s}
            elif rep.kind == "running":
                assert rep.version is not None
                if rep.version == c.version:
                    new = st.CONFIRMED  # read back from the meter: the only way to confirm
                    values = {"confirmed_at": now, "error_code": None, "retriable": None}
                    confirmed[(cid, component)].append(mid)
                elif st.RANK.get(state, 0) >= st.RANK[st.ACTIVATED] or rep.code:
                    new, values = self._failure(c, rep, attempts, rep.code or "version-mismatch",
                                                now)
                events.append({"meter_id": mid, "at": now, "kind": "result",
                               "component": component, "code": rep.code,
                               "data": {"running": rep.version, "target": c.version},
                               "campaign_id": cid, "assignment_id": rep.assignment_id})
            elif rep.kind == "failed":
                assert rep.code is not None
                if rep.attempt == attempts:  # a failure of an older attempt is stale
                    new, values = self._failure(c, rep, attempts, rep.code, now)
                    events.append({"meter_id": mid, "at": now, "kind": "result",
                                   "component": component, "code": rep.code, "data": {},
                                   "campaign_id": cid, "assignment_id": rep.assignment_id})
            elif rep.kind == "released" and state in (st.VERIFIED, st.SCHEDULED, st.ACTIVATED):
                w = writes.setdefault(rep.assignment_id, {"_id": rep.assignment_id,
                                                          "_from": state})
                w.update(claimed_by=None, lease_until=None, updated_at=now)
                continue
            if new is None:
                result.ignored += 1
                continue
            if new in st.TERMINAL or new == st.PENDING:
                values.update(claimed_by=None, lease_until=None)
            row[0] = new  # later reports in the same batch see the new state
            w = writes.setdefault(rep.assignment_id, {"_id": rep.assignment_id, "_from": state})
            w.update(state=new, updated_at=now, **values)
            moves[(state, new)].append((cid, rep.assignment_id))
            result.add(state, new)
        self._write(session, list(writes.values()))
        if confirmed:
            self._record_versions(session, confirmed, camps, now)
        if events:
            session.execute(insert(MeterEvent), events)
        self._audit_moves(session, now, moves, actor=actor)
        return result

    def _failure(self, c: _Camp, rep: Report, attempts: int, code: str,
                 now: float) -> tuple[str, dict[str, Any]]:
        decision = c.retry.decide(attempt=attempts, code=code, now=now, key=rep.assignment_id)
        if isinstance(decision, GiveUp):
            return st.FAILED, {"error_code": code, "retriable": False}
        return st.PENDING, {"error_code": code, "retriable": True,
                            "next_attempt_at": decision.at}

    def _write(self, session: Session, updates: list[dict[str, Any]]) -> None:
        """Conditional updates, grouped by the set of columns they change (executemany)."""
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        for u in updates:
            groups[tuple(sorted(k for k in u if not k.startswith("_")))].append(u)
        table: Table = Assignment.__table__  # type: ignore[assignment]
        for cols, params in groups.items():
            stmt = (
                update(table)
                .where(and_(table.c.id == bindparam("_id"), table.c.state == bindparam("_from")))
                .values({c: bindparam(c) for c in cols})
            )
            session.execute(stmt, params)

    def _record_versions(self, session: Session, confirmed: dict[tuple[int, str], list[int]],
                         camps: dict[int, _Camp], now: float) -> None:
        """Keep the inventory's running version in step with what was read back (UMS-1)."""
        for (cid, component), meter_ids in confirmed.items():
            v = camps[cid].version
            session.execute(
                update(MeterComponent)
                .where(MeterComponent.meter_id.in_(meter_ids),
                       MeterComponent.component == component)
                .values(running_version=v, running_key=try_key(v), staged_version=None,
                        staged_key=None, updated_at=now)
                .execution_options(synchronize_session=False)
            )

    def _audit_moves(self, session: Session, now: float,
                     moves: dict[tuple[str, str], list[tuple[int, int]]],
                     actor: str | None = None) -> None:
        """One chained audit row per (campaign, from, to) batch, naming every assignment."""
        events = []
        for (a, b), pairs in sorted(moves.items()):
            by_c: dict[int, list[int]] = defaultdict(list)
            for cid, aid in pairs:
                by_c[cid].append(aid)
            for cid, aids in sorted(by_c.items()):
                events.append(audit.Event(now, actor or self.claimer, f"assignment.{b}",
                                          f"campaign:{cid}", {"state": a},
                                          {"state": b, "assignments": sorted(aids)}))
        if events:
            audit.record_many(session, events)

    # ---------------------------------------------------------------- tick

    def recover(self, session: Session, *, now: float) -> int:
        """At start-up: leases this claimer held are from a previous life; end them now."""
        res = session.execute(
            update(Assignment).where(Assignment.claimed_by == self.claimer)
            .values(lease_until=now - 1)
            .execution_options(synchronize_session=False)
        )
        return int(res.rowcount)  # type: ignore[attr-defined]

    def tick(self, session: Session, *, now: float) -> TickResult:
        """Leases, deadlines, gates, completion; the caller commits."""
        out = TickResult()
        out.lease_lost = self._end_leases(session, now)
        if self._last_expire is None or now - self._last_expire >= self.expire_interval_s:
            out.expired = self._expire(session, now)
            self._last_expire = now
        self._gates(session, now, out)
        return out

    def _end_leases(self, session: Session, now: float) -> int:
        q = select(Assignment.id, Assignment.state, Assignment.attempts,
                   Assignment.campaign_id).where(
            Assignment.state.in_(st.IN_FLIGHT), Assignment.lease_until < now)
        rows = list(session.execute(self._lock(session, q)))
        if not rows:
            return 0
        reports: list[Report] = []
        release: list[dict[str, Any]] = []
        for aid, state, attempts, _cid in rows:
            if st.RANK[state] >= st.RANK[st.VERIFIED]:
                # staged or activated: nothing to redo; a finish job reads the meter back
                release.append({"_id": aid, "_from": state, "claimed_by": None,
                                "lease_until": None})
            else:
                reports.append(Report(aid, attempts, "failed", code="timeout"))
        if release:
            self._write(session, release)
        if reports:
            self.apply(session, reports, now=now, actor=f"{self.claimer}:lease")
        return len(rows)

    def _expire(self, session: Session, now: float) -> int:
        camp_deadline = (
            select(Campaign.deadline).where(Campaign.id == Assignment.campaign_id)
            .scalar_subquery()
        )
        q = select(Assignment.id, Assignment.state, Assignment.campaign_id).where(
            Assignment.state.in_(st.ACTIVE),
            or_(Assignment.deadline <= now, camp_deadline <= now),
        )
        rows = list(session.execute(self._lock(session, q)))
        if not rows:
            return 0
        updates = [{"_id": aid, "_from": s, "state": st.EXPIRED, "error_code": "timeout",
                    "retriable": False, "claimed_by": None, "lease_until": None,
                    "updated_at": now} for aid, s, _ in rows]
        self._write(session, updates)
        moves: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
        for aid, s, cid in rows:
            moves[(s, st.EXPIRED)].append((cid, aid))
        self._audit_moves(session, now, moves, actor=f"{self.claimer}:deadline")
        return len(rows)

    def _gates(self, session: Session, now: float, out: TickResult) -> None:
        running = session.execute(
            select(Campaign).where(Campaign.state == st.RUNNING).order_by(Campaign.id)
        ).scalars().all()
        for c in running:
            waves = session.execute(
                select(Wave).where(Wave.campaign_id == c.id).order_by(Wave.number)
            ).scalars().all()
            current = [w for w in waves if w.state == "running"]
            gate = GatePolicy(c.success_gate, c.failure_threshold)
            halted = False
            for w in current:
                decision, why = gate.decide(_wave_counts(session, w.id))
                if decision == "halt":
                    self._halt(session, c, w, why, now)
                    out.halted.append(c.id)
                    halted = True
                    break
                if decision == "advance":
                    res = session.execute(
                        update(Wave).where(Wave.id == w.id, Wave.state == "running")
                        .values(state="passed", finished_at=now)
                        .execution_options(synchronize_session=False)
                    )
                    w.state = "passed"
                    if res.rowcount != 1:  # type: ignore[attr-defined]
                        continue  # another worker's tick passed it first
                    audit.record(session, at=now, actor=self.claimer, action="wave.pass",
                                 object=f"campaign:{c.id}/wave:{w.number}",
                                 before={"state": "running"},
                                 after={"state": "passed", "reason": why})
                    out.advanced.append((c.id, w.number))
            if halted:
                continue
            if not any(w.state == "running" for w in waves):
                nxt = next((w for w in waves if w.state == "pending"), None)
                if nxt is not None:
                    from amiup.ums.campaigns import open_wave

                    open_wave(session, wave=nxt, now=now, actor=self.claimer)
                    continue
                active = session.execute(
                    select(func.count()).select_from(Assignment)
                    .where(Assignment.campaign_id == c.id, Assignment.state.in_(st.ACTIVE))
                ).scalar_one()
                if active == 0:
                    res = session.execute(
                        update(Campaign).where(Campaign.id == c.id, Campaign.state == st.RUNNING)
                        .values(state=st.COMPLETED, finished_at=now,
                                revision=Campaign.revision + 1)
                        .execution_options(synchronize_session=False)
                    )
                    if res.rowcount == 1:  # type: ignore[attr-defined]
                        audit.record(session, at=now, actor=self.claimer,
                                     action="campaign.complete", object=f"campaign:{c.id}",
                                     before={"state": st.RUNNING},
                                     after={"state": st.COMPLETED})
                        out.completed.append(c.id)

    def _halt(self, session: Session, c: Campaign, w: Wave, why: str, now: float) -> None:
        res = session.execute(
            update(Campaign).where(Campaign.id == c.id, Campaign.state == st.RUNNING)
            .values(state=st.HALTED, state_reason=f"wave {w.number}: {why}",
                    revision=Campaign.revision + 1)
            .execution_options(synchronize_session=False)
        )
        if res.rowcount != 1:  # type: ignore[attr-defined]
            return
        session.execute(
            update(Wave).where(Wave.id == w.id, Wave.state == "running")
            .values(state="halted", finished_at=now)
            .execution_options(synchronize_session=False)
        )
        audit.record(session, at=now, actor=self.claimer, action="campaign.halt",
                     object=f"campaign:{c.id}", before={"state": st.RUNNING},
                     after={"state": st.HALTED, "wave": w.number, "reason": why})


def _wave_counts(session: Session, wave_id: int) -> WaveCounts:
    counts: dict[str, int] = {
        state: int(n) for state, n in session.execute(
            select(Assignment.state, func.count()).where(Assignment.wave_id == wave_id)
            .group_by(Assignment.state)
        )
    }
    return WaveCounts(
        total=sum(counts.values()), confirmed=counts.get(st.CONFIRMED, 0),
        failed=counts.get(st.FAILED, 0), expired=counts.get(st.EXPIRED, 0),
        cancelled=counts.get(st.CANCELLED, 0),
    )

