"""API dependencies: the store, the clock, and the one authorization check every route uses.

Dependencies are ``async`` so FastAPI runs them on the event loop instead of sending each
one through the thread pool; the token lookup is one short indexed read.

``Require("meter.read")`` authenticates the bearer token and checks the action against
:data:`amiup.ums.auth.PERMISSIONS`; it is the only place the API decides who may do what.
The action is kept on the dependency so tests and docs can list route -> action.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from amiup.errors import error
from amiup.ums import auth
from amiup.ums.auth import Principal
from amiup.ums.store import Store

_bearer = HTTPBearer(auto_error=False, description="API token: `Authorization: Bearer amiup_...`")


async def get_store(request: Request) -> Store:
    """The store the app was built with."""
    store: Store = request.app.state.store
    return store


async def get_now(request: Request) -> float:
    """Current time from the app's clock (tests pass a fixed clock)."""
    clock: Callable[[], float] = request.app.state.clock
    return clock()


T = TypeVar("T")


async def read(request: Request, fn: Callable[[Session], T]) -> T:
    """``fn(session)`` in one read-only session, with one hop to a handler thread.

    Read routes are ``async`` and call this once: a plain ``def`` route costs FastAPI two
    thread hops (the handler, then validating its return value), and every hop is a GIL
    hand-off on a busy machine. SQLite and psycopg release the GIL while the database works,
    so a query in a handler thread overlaps with the event loop's HTTP work. With
    ``app.state.inline_reads`` the work runs on the event loop itself (no hop at all).
    """
    store: Store = request.app.state.store

    def work() -> T:
        with store.session(readonly=True) as db:
            return fn(db)

    if request.app.state.inline_reads:
        return work()
    return await run_in_threadpool(work)


StoreDep = Annotated[Store, Depends(get_store)]
NowDep = Annotated[float, Depends(get_now)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


class TokenCache:
    """Tokens verified in the last ``ttl_s`` seconds (monotonic), so a burst costs one lookup.

    A revoked token or a changed user stops working within ``ttl_s`` in every process, at once
    in the process that made the change (it clears the cache). Bounded: cleared when full.
    """

    def __init__(self, ttl_s: float, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[str, tuple[Principal, float]] = {}

    def get(self, token: str, now: float) -> Principal | None:
        hit = self._entries.get(auth.token_hash(token))
        if hit is None or time.monotonic() >= hit[1]:
            return None
        principal = hit[0]
        if principal.expires_at is not None and now >= principal.expires_at:
            return None
        return principal

    def put(self, token: str, principal: Principal) -> None:
        if self.ttl_s <= 0:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[auth.token_hash(token)] = (principal, time.monotonic() + self.ttl_s)

    def clear(self) -> None:
        self._entries.clear()


async def token_cache(request: Request) -> TokenCache:
    """The app's token cache."""
    cache: TokenCache = request.app.state.token_cache
    return cache


async def authenticate(request: Request, creds: Credentials) -> Principal:
    """The caller behind the bearer token; 401 problem otherwise.

    Runs on the event loop and reads the store and clock from the app state rather than
    through sub-dependencies (FastAPI resolves every dependency on every request, which
    costs more than the lookup itself). Most requests are answered by the short-lived
    :class:`TokenCache`; a miss is one indexed read that never waits for a lock (SQLite WAL,
    PostgreSQL MVCC).
    """
    if creds is None or creds.scheme.lower() != "bearer":
        raise error("unauthenticated", "send Authorization: Bearer <token>")
    state = request.app.state
    now: float = state.clock()
    cache: TokenCache = state.token_cache
    principal = cache.get(creds.credentials, now)
    if principal is None:
        store: Store = state.store
        with store.session(readonly=True) as db:
            principal = auth.authenticate_token(db, creds.credentials, now=now)
        cache.put(creds.credentials, principal)
    return principal


def Require(action: str) -> Any:
    """Dependency: the authenticated principal, if its roles allow ``action`` (else 403)."""
    if action not in auth.PERMISSIONS:
        raise RuntimeError(f"unknown action {action!r}: add it to auth.PERMISSIONS")

    async def check(request: Request, creds: Credentials) -> Principal:
        principal = await authenticate(request, creds)
        auth.require(principal, action)
        return principal

    check.action = action  # type: ignore[attr-defined]
    check.__name__ = f"require_{action.replace('.', '_')}"
    return Depends(check)


def route_action(route: Any) -> str | None:
    """The action a route requires (walking its dependencies), or None for open routes."""
    stack = [route.dependant]
    while stack:
        dep = stack.pop()
        action = getattr(dep.call, "action", None)
        if action is not None:
            return str(action)
        stack.extend(dep.dependencies)
    return None


def api_routes(app: Any) -> list[tuple[str, Any]]:
    """Every API route of ``app`` as (full path, route), walking included routers."""
    from fastapi.routing import APIRoute

    out: list[tuple[str, Any]] = []

    def walk(routes: Any, prefix: str) -> None:
        for r in routes:
            if isinstance(r, APIRoute):
                out.append((prefix + r.path, r))
            elif hasattr(r, "original_router"):
                ctx = getattr(r, "include_context", None)
                walk(r.original_router.routes, prefix + str(getattr(ctx, "prefix", "") or ""))
            elif hasattr(r, "routes") and isinstance(getattr(r, "routes", None), list):
                walk(r.routes, prefix + str(getattr(r, "path", "") or ""))

    walk(app.routes, "")
    return out
