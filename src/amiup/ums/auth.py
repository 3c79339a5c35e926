"""Who may do what in the UMS: users, argon2 passwords, hashed API tokens, one permission table.

Least privilege with separation of duties (SEC-4): uploaders bring packages in, operators
build and launch campaigns, approvers approve them (never their own: the approver of a
campaign is never its creator, MET-4's two-person rule), admins manage users and trust in
vendor keys, viewers read. Every API route names one action of :data:`PERMISSIONS`; the API
checks it in one dependency, so the table below *is* the access policy (docs/ums.md prints it).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from amiup.errors import error
from amiup.ums import audit
from amiup.ums.models import ROLES, ApiToken, User

_ALL = frozenset(ROLES)
_R = frozenset

# action -> roles allowed. Reads are open to every role; writes are split by duty.
PERMISSIONS: dict[str, frozenset[str]] = {
    # inventory and groups
    "meter.read": _ALL,
    "meter.write": _R({"operator"}),
    "group.read": _ALL,
    "group.write": _R({"operator"}),
    # catalog and trust
    "package.read": _ALL,
    "package.upload": _R({"uploader"}),
    "vendor_key.read": _ALL,
    "vendor_key.write": _R({"admin"}),
    # campaigns (routes in api/campaigns.py)
    "campaign.read": _ALL,
    "campaign.create": _R({"operator"}),
    "campaign.update": _R({"operator"}),
    "campaign.approve": _R({"approver"}),
    "campaign.launch": _R({"operator"}),  # start, resume
    "campaign.control": _R({"operator"}),  # pause, cancel, retry, activate-now
    # head-end HTTP API (a head-end process authenticates as an operator service account)
    "headend.work": _R({"operator"}),
    # audit and reports
    "audit.read": _R({"admin", "approver"}),
    "audit.verify": _R({"admin", "approver"}),
    "export.inventory": _ALL,
    "export.campaign": _ALL,
    "export.audit": _R({"admin", "approver"}),
    # people
    "user.read": _R({"admin"}),
    "user.write": _R({"admin"}),
    "token.self": _ALL,  # create, list and revoke one's own tokens
}

_hasher = PasswordHasher()  # argon2id, library defaults (RFC 9106 low-memory profile)
TOKEN_PREFIX = "amiup_"


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of an action."""

    user_id: int
    username: str
    roles: frozenset[str]
    expires_at: float | None = None  # of the token that authenticated it, if any


def allowed(roles: Iterable[str], action: str) -> bool:
    """True when any of ``roles`` may perform ``action`` (unknown actions: nobody may)."""
    return bool(PERMISSIONS.get(action, frozenset()) & set(roles))


def require(principal: Principal, action: str) -> None:
    """Raise ``forbidden`` unless ``principal`` may perform ``action``."""
    if not allowed(principal.roles, action):
        roles = ", ".join(sorted(PERMISSIONS.get(action, ()))) or "no role"
        raise error("forbidden", f"{action} needs one of: {roles}")


def check_separation(creator_id: int, approver_id: int) -> None:
    """The approver of a campaign is never its creator (SEC-4, MET-4)."""
    if creator_id == approver_id:
        raise error("forbidden", "the creator of a campaign cannot approve it")


def check_roles(roles: Iterable[str]) -> list[str]:
    """Validate role names; return them sorted and unique."""
    out = sorted(set(roles))
    unknown = [r for r in out if r not in ROLES]
    if unknown:
        raise error("invalid-argument", f"unknown role(s) {unknown}; roles are {list(ROLES)}")
    return out


def hash_password(password: str) -> str:
    """argon2id hash of ``password`` (refuses passwords shorter than 8 characters)."""
    if len(password) < 8:
        raise error("invalid-argument", "password must be at least 8 characters")
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """Constant-time check of ``password`` against an argon2 hash; never raises."""
    if not stored:
        return False
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def token_hash(token: str) -> str:
    """What is stored for a token: its SHA-256 (tokens carry 256 random bits)."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_user(session: Session, *, username: str, password: str | None, roles: Iterable[str],
                now: float, actor: str) -> User:
    """Add a user (audited); ``conflict`` when the name is taken."""
    if not username or len(username) > 64 or not username.replace("-", "").replace("_", "") \
            .replace(".", "").isalnum():
        raise error("invalid-argument", "username: 1-64 letters, digits, '-', '_' or '.'")
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise error("conflict", f"user {username!r} exists")
    user = User(username=username, roles=check_roles(roles), active=True, created_at=now,
                password_hash=hash_password(password) if password is not None else None)
    session.add(user)
    session.flush()
    audit.record(session, at=now, actor=actor, action="user.create", object=f"user:{user.id}",
                 after={"username": username, "roles": user.roles})
    return user


def set_roles(session: Session, *, user: User, roles: Iterable[str], now: float,
              actor: str) -> User:
    """Replace a user's roles (audited)."""
    before = list(user.roles)
    user.roles = check_roles(roles)
    audit.record(session, at=now, actor=actor, action="user.roles", object=f"user:{user.id}",
                 before={"roles": before}, after={"roles": user.roles})
    return user


def issue_token(session: Session, *, user: User, name: str, now: float,
                ttl_s: float | None = None) -> tuple[str, ApiToken]:
    """Make an API token for ``user``; the plaintext is returned once and never stored."""
    plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(user_id=user.id, name=name[:64] or "token", token_hash=token_hash(plain),
                   prefix=plain[: len(TOKEN_PREFIX) + 6], created_at=now,
                   expires_at=now + ttl_s if ttl_s else None, revoked=False)
    session.add(row)
    session.flush()
    audit.record(session, at=now, actor=user.username, action="token.create",
                 object=f"token:{row.id}", after={"name": row.name, "prefix": row.prefix,
                                                  "expires_at": row.expires_at})
    return plain, row


def revoke_token(session: Session, *, token: ApiToken, now: float, actor: str) -> None:
    """Revoke a token (audited)."""
    token.revoked = True
    audit.record(session, at=now, actor=actor, action="token.revoke", object=f"token:{token.id}")


def authenticate_token(session: Session, token: str, *, now: float) -> Principal:
    """The principal behind a bearer token; ``unauthenticated`` for anything else."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 128:
        raise error("unauthenticated", "not an amiup API token")
    digest = token_hash(token)
    row = session.execute(
        select(ApiToken, User).join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == digest)
    ).first()
    if row is None:
        raise error("unauthenticated", "unknown token")
    tok, user = row
    if not hmac.compare_digest(tok.token_hash, digest) or tok.revoked or not user.active:
        raise error("unauthenticated", "token revoked or user disabled")
    if tok.expires_at is not None and now >= tok.expires_at:
        raise error("unauthenticated", "token expired")
    return Principal(user.id, user.username, frozenset(user.roles), tok.expires_at)


def authenticate_password(session: Session, username: str, password: str) -> User:
    """The user whose name and password match; ``unauthenticated`` otherwise."""
    user = session.scalar(select(User).where(User.username == username))
    ok = verify_password(user.password_hash if user else None, password)
    if user is None or not ok or not user.active:
        raise error("unauthenticated", "wrong username or password")
    return user
