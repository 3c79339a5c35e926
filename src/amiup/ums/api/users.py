"""Routes for people: log in for a token, manage users (admin) and one's own API tokens."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import func, select

from amiup.errors import AmiupError, error
from amiup.ums import audit, auth
from amiup.ums.api.deps import NowDep, Require, StoreDep, TokenCache, token_cache
from amiup.ums.api.schemas import (
    LoginRequest,
    Page,
    TokenCreate,
    TokenIssued,
    TokenPublic,
    UserCreate,
    UserPublic,
    UserUpdate,
)
from amiup.ums.auth import Principal
from amiup.ums.models import ApiToken, User
from amiup.ums.store import Store

router = APIRouter(tags=["users"])
CacheDep = Annotated[TokenCache, Depends(token_cache)]


def _user(u: User) -> UserPublic:
    return UserPublic(id=u.id, username=u.username, roles=list(u.roles), active=u.active,
                      created_at=u.created_at)


def _token(t: ApiToken) -> TokenPublic:
    return TokenPublic(id=t.id, name=t.name, prefix=t.prefix, created_at=t.created_at,
                       expires_at=t.expires_at, revoked=t.revoked)


@router.post("/auth/token", response_model=TokenIssued, status_code=201)
def login(body: LoginRequest, store: StoreDep, now: NowDep) -> TokenIssued:
    """Exchange a username and password for an API token (the only open route)."""
    try:
        with store.session(readonly=True) as db:
            user_id = auth.authenticate_password(db, body.username, body.password).id
    except AmiupError as exc:
        with store.session() as log:
            audit.record(log, at=now, actor=body.username[:64], action="auth.login",
                         outcome=exc.code)
        raise
    with store.session() as db:
        user = db.get(User, user_id)
        assert user is not None
        plain, tok = auth.issue_token(db, user=user, name=body.token_name, now=now,
                                      ttl_s=body.ttl_s)
        return TokenIssued(token=plain, **_token(tok).model_dump())


@router.get("/me", response_model=UserPublic)
async def me(request: Request, p: Annotated[Principal, Require("token.self")]) -> dict[str, Any]:
    """Who the token belongs to, and its roles (one primary-key read, on the event loop)."""
    store: Store = request.app.state.store
    with store.session(readonly=True) as db:
        row = db.connection().execute(
            select(User.id, User.username, User.roles, User.active, User.created_at)
            .where(User.id == p.user_id)).first()
    if row is None:
        raise error("unauthenticated", "the token's user no longer exists")
    return {"id": row[0], "username": row[1], "roles": list(row[2]), "active": row[3],
            "created_at": row[4]}


@router.get("/users", response_model=Page[UserPublic])
def list_users(_: Annotated[Principal, Require("user.read")], store: StoreDep,
               limit: Annotated[int, Query(ge=1, le=1000)] = 100,
               offset: Annotated[int, Query(ge=0)] = 0) -> Page[UserPublic]:
    """All users."""
    with store.session(readonly=True) as db:
        total = db.scalar(select(func.count()).select_from(User)) or 0
        rows = db.scalars(select(User).order_by(User.id).limit(limit).offset(offset)).all()
        return Page(items=[_user(u) for u in rows], total=total, limit=limit, offset=offset)


@router.post("/users", response_model=UserPublic, status_code=201)
def create_user(body: UserCreate, p: Annotated[Principal, Require("user.write")],
                store: StoreDep, now: NowDep) -> UserPublic:
    """Add a user with roles (admin)."""
    with store.session() as db:
        u = auth.create_user(db, username=body.username, password=body.password,
                             roles=body.roles, now=now, actor=p.username)
        return _user(u)


@router.patch("/users/{username}", response_model=UserPublic)
def update_user(username: str, body: UserUpdate, p: Annotated[Principal, Require("user.write")],
                store: StoreDep, now: NowDep, cache: CacheDep) -> UserPublic:
    """Change a user's roles or disable them (admin); cached tokens are dropped after commit."""
    try:
        return _update_user(username, body, p, store, now)
    finally:
        cache.clear()


def _update_user(username: str, body: UserUpdate, p: Principal, store: StoreDep,
                 now: float) -> UserPublic:
    with store.session() as db:
        u = db.scalar(select(User).where(User.username == username))
        if u is None:
            raise error("not-found", f"no user {username[:64]!r}")
        if body.roles is not None:
            auth.set_roles(db, user=u, roles=body.roles, now=now, actor=p.username)
        if body.active is not None and body.active != u.active:
            audit.record(db, at=now, actor=p.username, action="user.active",
                         object=f"user:{u.id}", before={"active": u.active},
                         after={"active": body.active})
            u.active = body.active
        return _user(u)


@router.get("/tokens", response_model=list[TokenPublic])
def list_tokens(p: Annotated[Principal, Require("token.self")],
                store: StoreDep) -> list[TokenPublic]:
    """The caller's own tokens (never the secrets)."""
    with store.session(readonly=True) as db:
        rows = db.scalars(select(ApiToken).where(ApiToken.user_id == p.user_id)
                          .order_by(ApiToken.id)).all()
        return [_token(t) for t in rows]


@router.post("/tokens", response_model=TokenIssued, status_code=201)
def create_token(body: TokenCreate, p: Annotated[Principal, Require("token.self")],
                 store: StoreDep, now: NowDep) -> TokenIssued:
    """A new token for the caller; the secret is in this response only."""
    with store.session() as db:
        user = db.get(User, p.user_id)
        assert user is not None
        plain, tok = auth.issue_token(db, user=user, name=body.name, now=now, ttl_s=body.ttl_s)
        return TokenIssued(token=plain, **_token(tok).model_dump())


@router.delete("/tokens/{token_id}", response_model=TokenPublic)
def revoke_token(token_id: int, p: Annotated[Principal, Require("token.self")],
                 store: StoreDep, now: NowDep, cache: CacheDep) -> TokenPublic:
    """Revoke one of the caller's tokens (cached tokens are dropped after commit)."""
    try:
        with store.session() as db:
            tok = db.get(ApiToken, token_id) if 0 < token_id < 2**63 else None
            if tok is None or tok.user_id != p.user_id:
                raise error("not-found", f"no token {token_id} of yours")
            auth.revoke_token(db, token=tok, now=now, actor=p.username)
            return _token(tok)
    finally:
        cache.clear()
