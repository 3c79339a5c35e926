"""Request and response shapes of the API (pydantic); secrets never appear in a Public model."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")
Role = Literal["viewer", "operator", "approver", "uploader", "admin"]
Name = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")


class Page(BaseModel, Generic[T]):
    """One page of a list; ``total`` counts all matches."""

    items: list[T]
    total: int
    limit: int
    offset: int


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    token_name: str = Field(default="login", max_length=64)
    ttl_s: float | None = Field(default=86400.0, gt=0, le=365 * 86400)


class UserCreate(BaseModel):
    username: str = Name
    password: str | None = Field(default=None, min_length=8, max_length=1024)
    roles: list[Role] = Field(default_factory=list, max_length=5)


class UserUpdate(BaseModel):
    roles: list[Role] | None = Field(default=None, max_length=5)
    active: bool | None = None


class UserPublic(BaseModel):
    id: int
    username: str
    roles: list[str]
    active: bool
    created_at: float


class TokenCreate(BaseModel):
    name: str = Field(default="token", min_length=1, max_length=64)
    ttl_s: float | None = Field(default=None, gt=0, le=365 * 86400)


class TokenPublic(BaseModel):
    id: int
    name: str
    prefix: str
    created_at: float
    expires_at: float | None
    revoked: bool


class TokenIssued(TokenPublic):
    token: str = Field(description="shown once; only its hash is stored")


class PackagePublic(BaseModel):
    id: int
    digest: str
    file_sha256: str
    size: int
    vendor: str
    model: str
    hw_revs: list[str]
    component: str
    version: str
    security_seq: int
    payload_kind: str
    encrypted: bool
    metrology: bool
    legal_ref: str | None
    signer_ids: list[str]
    notes: str
    uploaded_by: str
    uploaded_at: float


class VendorKeyCreate(BaseModel):
    vendor: str = Field(min_length=1, max_length=128)
    public_key_pem: str = Field(min_length=1, max_length=8192)


class VendorKeyPublic(BaseModel):
    key_id: str
    vendor: str
    added_by: str
    added_at: float
    revoked: bool


class MeterPut(BaseModel):
    model: str = Field(min_length=1, max_length=128)
    vendor: str = Field(default="", max_length=128)
    hw_rev: str = Field(default="", max_length=64)
    region: str = Field(default="", max_length=64)
    cell: str = Field(default="", max_length=64)
    groups: list[str] = Field(default_factory=list, max_length=32)
    public_key_pem: str | None = Field(default=None, max_length=8192)
    components: dict[str, str] = Field(default_factory=dict, max_length=8)


class ComponentPublic(BaseModel):
    running: str
    staged: str | None
    security_seq: int


class MeterPublic(BaseModel):
    serial: str
    vendor: str
    model: str
    hw_rev: str
    region: str
    cell: str
    groups: list[str]
    last_contact: float | None
    components: dict[str, ComponentPublic]


class NonceIssued(BaseModel):
    nonce: str = Field(description="hex; the meter's next status report must carry it")


class ReportResult(BaseModel):
    serial: str
    changed: dict[str, list[str]]
    field_upgrades: int


class GroupCreate(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    filter: str | None = Field(default=None, max_length=4096)
    members: list[str] = Field(default_factory=list, max_length=100_000)
    description: str = Field(default="", max_length=1024)


class GroupPublic(BaseModel):
    name: str
    kind: str
    filter: str | None
    description: str
    created_by: str
    created_at: float
    size: int


class Members(BaseModel):
    serials: list[str] = Field(min_length=1, max_length=100_000)


class MembersChanged(BaseModel):
    changed: int


class AuditPublic(BaseModel):
    seq: int
    at: float
    actor: str
    action: str
    object: str
    before: Any
    after: Any
    outcome: str
    prev_hash: str
    hash: str


class AuditVerify(BaseModel):
    ok: bool
    rows: int
    first_bad: int | None
    reason: str
    head: str
