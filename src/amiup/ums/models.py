"""The UMS tables as SQLAlchemy 2 models: the one schema SQLite and PostgreSQL both run.

Conventions, so every part reads rows the same way:

* Times are unix seconds (``float``, UTC), always passed in by the caller (sans-I/O cores);
  no column has a server-side clock default.
* Version strings sit next to a sortable ``*_key`` (see :mod:`amiup.ums.versions`) so SQL
  compares versions as semver does.
* Free-form structures (target spec, wave plan, windows, manifest) are JSON columns
  (JSONB on PostgreSQL).
* Every state column is a plain string whose values are listed here as tuples; transitions
  are conditional updates on the expected state (done by the scheduler, not here).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# JSON everywhere, JSONB on PostgreSQL (indexable, compact).
JSONType = JSON().with_variant(JSONB(), "postgresql")
# Integer primary keys that are 64-bit on PostgreSQL and ROWID aliases on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")

ROLES: tuple[str, ...] = ("viewer", "operator", "approver", "uploader", "admin")
COMPONENTS: tuple[str, ...] = ("metrology", "ami_app", "ami_comm", "han_app", "han_comm")

CAMPAIGN_STATES: tuple[str, ...] = (
    "draft", "approved", "running", "paused", "halted", "completed", "cancelled",
)
WAVE_STATES: tuple[str, ...] = ("pending", "running", "passed", "halted", "cancelled")
ASSIGNMENT_STATES: tuple[str, ...] = (
    "pending", "offered", "transferring", "transferred", "verified", "scheduled",
    "activated", "confirmed", "failed", "cancelled", "expired",
)
# A meter component can be in at most one assignment in these states, across all campaigns
# (UMS-12). A retriable failure that will be retried goes back to ``pending`` (with
# ``next_attempt_at``); ``failed`` is final, so it releases the component.
ACTIVE_ASSIGNMENT_STATES: tuple[str, ...] = (
    "pending", "offered", "transferring", "transferred", "verified", "scheduled", "activated",
)
FINAL_ASSIGNMENT_STATES: tuple[str, ...] = ("confirmed", "failed", "cancelled", "expired")

_ACTIVE_SQL = "state IN (" + ", ".join(f"'{s}'" for s in ACTIVE_ASSIGNMENT_STATES) + ")"

# Stable constraint names, so Alembic migrations can refer to them on both stores.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base holding the UMS metadata."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {
        int: BigId, dict[str, Any]: JSONType, list[Any]: JSONType, Any: JSONType,
    }


# --------------------------------------------------------------------------- people and keys


class User(Base):
    """A person or service account; ``roles`` is a list of names from ``ROLES`` (SEC-4)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))  # argon2id; None: token only
    roles: Mapped[list[Any]] = mapped_column(default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[float] = mapped_column(Float)


class ApiToken(Base):
    """An API token; only its SHA-256 is stored (tokens are 256-bit random, so no KDF needed)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # shown in listings to tell tokens apart
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float | None] = mapped_column(Float)
    last_used_at: Mapped[float | None] = mapped_column(Float)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class VendorKey(Base):
    """A manufacturer's public signing key the catalog trusts for that vendor's packages."""

    __tablename__ = "vendor_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    vendor: Mapped[str] = mapped_column(String(128), index=True)
    key_id: Mapped[str] = mapped_column(String(64), unique=True)  # hex SHA-256 of the DER SPKI
    public_der: Mapped[bytes] = mapped_column(LargeBinary)
    added_by: Mapped[str] = mapped_column(String(64))
    added_at: Mapped[float] = mapped_column(Float)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


# --------------------------------------------------------------------------- catalog


class Package(Base):
    """A verified ``.amiup`` file in the catalog; the file lives on disk under its SHA-256."""

    __tablename__ = "packages"
    __table_args__ = (Index(None, "vendor", "model", "component", "version_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)  # manifest digest (orders)
    file_sha256: Mapped[str] = mapped_column(String(64), unique=True)  # blob name on disk
    size: Mapped[int] = mapped_column(BigInteger)
    vendor: Mapped[str] = mapped_column(String(128))
    model: Mapped[str] = mapped_column(String(128))
    hw_revs: Mapped[list[Any]] = mapped_column(default=list)
    component: Mapped[str] = mapped_column(String(32))
    version: Mapped[str] = mapped_column(String(64))
    version_key: Mapped[str | None] = mapped_column(String(128))
    security_seq: Mapped[int] = mapped_column(BigInteger)
    payload_kind: Mapped[str] = mapped_column(String(16))  # full | delta
    from_sha256: Mapped[str | None] = mapped_column(String(64))  # base image of a delta
    encrypted: Mapped[bool] = mapped_column(Boolean, default=False)
    metrology: Mapped[bool] = mapped_column(Boolean, default=False)  # carries legal identity
    legal_ref: Mapped[str | None] = mapped_column(String(128))
    manifest: Mapped[dict[str, Any]] = mapped_column(default=dict)
    signer_ids: Mapped[list[Any]] = mapped_column(default=list)
    notes: Mapped[str] = mapped_column(Text, default="")
    uploaded_by: Mapped[str] = mapped_column(String(64))
    uploaded_at: Mapped[float] = mapped_column(Float)


# --------------------------------------------------------------------------- inventory


class Meter(Base):
    """One meter in the inventory (UMS-1); ``serial`` is the id upgrade orders name."""

    __tablename__ = "meters"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    serial: Mapped[str] = mapped_column(String(64), unique=True)
    vendor: Mapped[str] = mapped_column(String(128), default="")
    model: Mapped[str] = mapped_column(String(128), index=True)
    hw_rev: Mapped[str] = mapped_column(String(64), default="")
    region: Mapped[str] = mapped_column(String(64), default="", index=True)
    cell: Mapped[str] = mapped_column(String(64), default="", index=True)  # collector / AP
    groups: Mapped[list[Any]] = mapped_column(default=list)  # meter's own group ids (orders)
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    public_key_der: Mapped[bytes | None] = mapped_column(LargeBinary)  # signs status reports
    report_nonce: Mapped[str | None] = mapped_column(String(64))  # nonce the next report carries
    order_counter: Mapped[int] = mapped_column(BigInteger, default=0)  # last order counter used
    last_contact: Mapped[float | None] = mapped_column(Float, index=True)
    created_at: Mapped[float] = mapped_column(Float)


class MeterComponent(Base):
    """A component of a meter: running and staged version and anti-rollback sequence."""

    __tablename__ = "meter_components"
    __table_args__ = (
        UniqueConstraint("meter_id", "component"),
        Index(None, "component", "running_key"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    meter_id: Mapped[int] = mapped_column(ForeignKey("meters.id", ondelete="CASCADE"))
    component: Mapped[str] = mapped_column(String(32))
    running_version: Mapped[str] = mapped_column(String(64), default="")
    running_key: Mapped[str | None] = mapped_column(String(128))
    running_sha256: Mapped[str | None] = mapped_column(String(64))
    staged_version: Mapped[str | None] = mapped_column(String(64))
    staged_key: Mapped[str | None] = mapped_column(String(128))
    security_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[float] = mapped_column(Float)


class Group(Base):
    """A saved group: a fixed member list (``static``) or a stored filter (``filter``)."""

    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # static | filter
    filter_expr: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float)


class GroupMember(Base):
    """Membership of a meter in a static group."""

    __tablename__ = "group_members"

    group_id: Mapped[int] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    meter_id: Mapped[int] = mapped_column(
        ForeignKey("meters.id", ondelete="CASCADE"), primary_key=True, index=True
    )


# --------------------------------------------------------------------------- campaigns


class Campaign(Base):
    """An upgrade campaign: one package to a target, in waves, with gates and policies.

    ``target``: ``{"kind": "meters"|"group"|"filter"|"fleet", "meters": [...], "group": name,
    "filter": expr}``. ``waves``: the plan, e.g. ``{"pilot": 10, "steps": ["10%", "50%",
    "100%"], "per_cell": true}``. ``windows``: ``[{"days": [0..6], "start": "22:00", "end":
    "05:00"}]`` in ``timezone``; ``blackout_dates``: ``["2026-12-24", ...]``.
    ``activation``: ``{"mode": "now"|"at"|"on-command", "at": unix}``. ``retry``:
    ``{"max_attempts": n, "backoff_s": b, "factor": f, "retryable": [codes]}``.
    """

    __tablename__ = "campaigns"
    __table_args__ = (Index(None, "state"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")
    package_id: Mapped[int] = mapped_column(ForeignKey("packages.id"))
    component: Mapped[str] = mapped_column(String(32))
    metrology: Mapped[bool] = mapped_column(Boolean, default=False)  # needs 2nd approver (MET-4)
    state: Mapped[str] = mapped_column(String(16), default="draft")
    target: Mapped[dict[str, Any]] = mapped_column(default=dict)
    waves_plan: Mapped[dict[str, Any]] = mapped_column(default=dict)
    success_gate: Mapped[float] = mapped_column(Float, default=0.95)  # fraction confirmed
    failure_threshold: Mapped[float] = mapped_column(Float, default=0.05)  # fraction -> halt
    windows: Mapped[list[Any]] = mapped_column(default=list)
    blackout_dates: Mapped[list[Any]] = mapped_column(default=list)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    activation: Mapped[dict[str, Any]] = mapped_column(default=dict)
    retry: Mapped[dict[str, Any]] = mapped_column(default=dict)
    assignment_timeout_s: Mapped[float] = mapped_column(Float, default=7 * 86400.0)
    deadline: Mapped[float | None] = mapped_column(Float)  # whole campaign, unix s
    allow_downgrade: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    approved_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    state_reason: Mapped[str] = mapped_column(Text, default="")  # why halted / cancelled
    created_at: Mapped[float] = mapped_column(Float)
    approved_at: Mapped[float | None] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float)
    revision: Mapped[int] = mapped_column(Integer, default=0)  # bumped by each change


class Wave(Base):
    """One wave of a campaign, numbered from 0 in launch order."""

    __tablename__ = "waves"
    __table_args__ = (UniqueConstraint("campaign_id", "number"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)  # 0 = pilot when the plan has one
    name: Mapped[str] = mapped_column(String(64), default="")
    state: Mapped[str] = mapped_column(String(16), default="pending")
    planned: Mapped[int] = mapped_column(Integer, default=0)  # assignments in the wave
    started_at: Mapped[float | None] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float)


class Assignment(Base):
    """One meter component in one campaign, walking the assignment states (UMS-5, UMS-12).

    The partial unique index ``uq_assignments_active`` lets at most one assignment per meter
    component be in an active state across all campaigns. Workers claim rows by setting
    ``claimed_by`` and ``lease_until``; a lease that ran out may be claimed again.
    """

    __tablename__ = "assignments"
    __table_args__ = (
        UniqueConstraint("campaign_id", "meter_id", "component"),
        Index(
            "uq_assignments_active",
            "meter_id",
            "component",
            unique=True,
            sqlite_where=text(_ACTIVE_SQL),
            postgresql_where=text(_ACTIVE_SQL),
        ),
        Index(None, "campaign_id", "state"),
        Index(None, "state", "next_attempt_at"),
        Index(None, "wave_id", "state"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # References without declared foreign keys: PostgreSQL checks a foreign key once per
    # inserted row, which was most of the time of creating a million-meter campaign. The
    # store still enforces them (migration 0003): a statement-level trigger checks all new
    # rows at once (meter, campaign, and a wave of that campaign exist; SQLSTATE 23503), and
    # triggers on meters, campaigns and waves do the former ON DELETE CASCADE / SET NULL.
    campaign_id: Mapped[int] = mapped_column(BigId)
    wave_id: Mapped[int | None] = mapped_column(BigId)
    meter_id: Mapped[int] = mapped_column(BigId)
    component: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    error_code: Mapped[str | None] = mapped_column(String(64))
    retriable: Mapped[bool | None] = mapped_column(Boolean)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[float | None] = mapped_column(Float)
    deadline: Mapped[float | None] = mapped_column(Float)
    order_counter: Mapped[int | None] = mapped_column(BigInteger)  # counter of the signed order
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    confirmed_at: Mapped[float | None] = mapped_column(Float)


# --------------------------------------------------------------------------- audit and events


class AuditEntry(Base):
    """One row of the append-only, hash-chained audit trail (SEC-5, UMS-11).

    ``hash = SHA-256(prev_hash || canonical JSON of the row's other fields)``; ``seq`` runs
    1, 2, 3... without gaps, so an edited, deleted or reordered row breaks the chain.
    """

    __tablename__ = "audit"

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"),
                                     primary_key=True, autoincrement=False)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    at: Mapped[float] = mapped_column(Float)
    actor: Mapped[str] = mapped_column(String(64))  # username, "meter:<serial>", "worker:<id>"
    action: Mapped[str] = mapped_column(String(64), index=True)  # e.g. campaign.approve
    object: Mapped[str] = mapped_column(String(128), default="")  # e.g. campaign:12
    before: Mapped[str | None] = mapped_column(Text)  # canonical JSON, hashed byte for byte
    after: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(64), default="ok")  # ok | error code


class MeterEvent(Base):
    """An event a meter reported (status, result, alarm); each one is also audited."""

    __tablename__ = "meter_events"
    __table_args__ = (Index(None, "meter_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    meter_id: Mapped[int] = mapped_column(ForeignKey("meters.id", ondelete="CASCADE"))
    at: Mapped[float] = mapped_column(Float)
    kind: Mapped[str] = mapped_column(String(32))  # status | result | alarm | field-upgrade
    component: Mapped[str | None] = mapped_column(String(32))
    code: Mapped[str | None] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    campaign_id: Mapped[int | None] = mapped_column(BigInteger)
    assignment_id: Mapped[int | None] = mapped_column(BigInteger)
