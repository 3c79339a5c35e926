"""The append-only, hash-chained audit trail: record an action, verify the whole chain.

Each row's ``hash`` is SHA-256 over the previous row's hash and a canonical JSON of the row's
own fields (seq included), so editing a row, deleting one or swapping two breaks the chain at
that row (SEC-5, UMS-11). Rows are written in the caller's transaction, so an action and its
audit row commit or vanish together. Writers are serialized (an advisory lock on PostgreSQL,
``BEGIN IMMEDIATE`` on SQLite) and ``seq`` is the primary key: the chain can never fork.
The store also refuses UPDATE and DELETE on the table (triggers, migration 0002); the hash
chain is what catches someone who drops those triggers first.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from amiup.ums.models import AuditEntry

GENESIS = "0" * 64
_PG_LOCK_KEY = 0x616D69757061  # "amiupa": the audit writers' advisory lock


def canonical_json(value: Any) -> str | None:
    """The one JSON spelling that is stored and hashed (sorted keys, no spaces)."""
    if value is None:
        return None
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str)


def row_hash(prev_hash: str, *, seq: int, at: float, actor: str, action: str, object: str,
             before: str | None, after: str | None, outcome: str) -> str:
    """SHA-256 hex of ``prev_hash`` and the row's canonical fields."""
    body = json.dumps(
        [seq, repr(float(at)), actor, action, object, before, after, outcome],
        separators=(",", ":"), ensure_ascii=False,
    )
    return hashlib.sha256(prev_hash.encode() + b"\n" + body.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Event:
    """One action to audit (used by :func:`record_many`)."""

    at: float
    actor: str
    action: str
    object: str = ""
    before: Any = None
    after: Any = None
    outcome: str = "ok"


def _tail(session: Session) -> tuple[int, str]:
    """Lock the chain for this transaction and return (last seq, last hash)."""
    txn = session.get_transaction()
    cached = session.info.get("audit_tail")
    if cached is not None and cached[0] is txn:
        return cached[1], cached[2]
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
    last = session.execute(
        select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)
    ).first()
    return (last[0], last[1]) if last else (0, GENESIS)


def record_many(session: Session, events: Iterable[Event]) -> list[AuditEntry]:
    """Append ``events`` to the chain in order, in the caller's transaction."""
    seq, prev = _tail(session)
    rows: list[AuditEntry] = []
    for ev in events:
        seq += 1
        before, after = canonical_json(ev.before), canonical_json(ev.after)
        h = row_hash(prev, seq=seq, at=ev.at, actor=ev.actor, action=ev.action,
                     object=ev.object, before=before, after=after, outcome=ev.outcome)
        rows.append(AuditEntry(seq=seq, prev_hash=prev, hash=h, at=float(ev.at),
                               actor=ev.actor, action=ev.action, object=ev.object,
                               before=before, after=after, outcome=ev.outcome))
        prev = h
    session.add_all(rows)
    session.flush()
    session.info["audit_tail"] = (session.get_transaction(), seq, prev)
    return rows


def record(session: Session, *, at: float, actor: str, action: str, object: str = "",
           before: Any = None, after: Any = None, outcome: str = "ok") -> AuditEntry:
    """Append one row (who, what, when, before/after, outcome) in the caller's transaction."""
    return record_many(session, [Event(at, actor, action, object, before, after, outcome)])[0]


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """Outcome of a chain check: ``first_bad`` is the seq of the first broken row, if any."""

    ok: bool
    rows: int
    first_bad: int | None = None
    reason: str = ""
    head: str = GENESIS  # hash of the last good row: anchor it elsewhere to catch truncation


def verify(session: Session, *, batch: int = 5000) -> VerifyResult:
    """Walk the chain from the first row; stop at the first row that does not fit."""
    expected_seq, prev = 1, GENESIS
    rows = 0
    stmt = select(AuditEntry).order_by(AuditEntry.seq).execution_options(yield_per=batch)
    for (row,) in session.execute(stmt):
        bad = _check(row, expected_seq, prev)
        if bad:
            return VerifyResult(False, rows, row.seq, bad, prev)
        rows += 1
        expected_seq, prev = row.seq + 1, row.hash
    return VerifyResult(True, rows, None, "", prev)


def _check(row: AuditEntry, expected_seq: int, prev: str) -> str:
    if row.seq != expected_seq:
        return (f"expected seq {expected_seq}, found {row.seq}: "
                f"row(s) deleted or reordered before it")
    if row.prev_hash != prev:
        return "prev_hash does not match the previous row's hash (row deleted or reordered)"
    again = row_hash(prev, seq=row.seq, at=row.at, actor=row.actor, action=row.action,
                     object=row.object, before=row.before, after=row.after,
                     outcome=row.outcome)
    if again != row.hash:
        return "hash does not match the row's contents (row edited)"
    return ""


def entry_dict(row: AuditEntry) -> dict[str, Any]:
    """An audit row as plain data (before/after decoded) for the API and exports."""
    return {
        "seq": row.seq, "at": row.at, "actor": row.actor, "action": row.action,
        "object": row.object,
        "before": json.loads(row.before) if row.before is not None else None,
        "after": json.loads(row.after) if row.after is not None else None,
        "outcome": row.outcome, "prev_hash": row.prev_hash, "hash": row.hash,
    }


def entry_dicts(rows: Sequence[AuditEntry]) -> list[dict[str, Any]]:
    """Many rows as plain data."""
    return [entry_dict(r) for r in rows]
