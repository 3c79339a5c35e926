"""The UMS REST API: the FastAPI app factory (one router per resource, OpenAPI published).

``create_app(store)`` builds the app; nothing happens at import. Routers of other UMS parts
are included when their modules exist: ``amiup.ums.api.campaigns`` and
``amiup.ums.api.headend`` each expose ``router``.
"""

from __future__ import annotations

import gc
import importlib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI

from amiup import __version__ as _version
from amiup.ums.api import audit, exports, groups, meters, packages, problems, users
from amiup.ums.api.deps import TokenCache
from amiup.ums.store import Store

# Routers owned by other UMS modules, included when present (see docs/dev/interfaces.md).
EXTENSION_ROUTERS = ("amiup.ums.api.campaigns", "amiup.ums.api.headend")


def create_app(store: Store, *, clock: Callable[[], float] = time.time,
               threads: int | None = None, token_cache_s: float = 5.0,
               inline_reads: bool | None = None, freeze_gc: bool = False) -> FastAPI:
    """The API over ``store``; ``clock`` gives unix seconds (tests pass a fixed one).

    ``threads`` caps the worker threads that run the (synchronous) route handlers for the
    whole process; a few threads serve a CPU-bound SQLite store better than many fighting
    over the GIL and the write lock. None leaves the default (40). ``token_cache_s``: how long
    a verified token is trusted without a lookup (0 disables; see ``deps.TokenCache``).
    ``inline_reads``: run read routes' store work on the event loop instead of a handler
    thread (see ``deps.read``); None means yes on SQLite (reads are in-process and short, and
    the hop costs more than it saves), no on PostgreSQL (a network round trip must not stall
    the loop). ``freeze_gc`` (for a server process, not for tests that build many apps):
    at startup, move every object alive then (modules, routes, the ORM's metadata: some
    150,000) out of reach of the cyclic garbage collector; otherwise each full collection
    walks them all and stalls every request in flight for 100-150 ms, which alone decides
    the p99.
    """

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if threads is not None:
            anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        if freeze_gc:
            gc.collect()
            gc.freeze()
        yield

    app = FastAPI(
        lifespan=lifespan,
        title="amiup UMS", version=_version,
        description="Upgrade Management System of amiup: catalog, inventory, campaigns, "
                    "audit. Errors are application/problem+json with a stable `code`.",
    )
    app.state.store = store
    app.state.clock = clock
    app.state.token_cache = TokenCache(token_cache_s)
    if inline_reads is None:  # (store is None only when building the OpenAPI document)
        inline_reads = store is not None and store.dialect == "sqlite"
    app.state.inline_reads = inline_reads
    problems.install(app)

    @app.get("/healthz", tags=["meta"])
    async def healthz() -> dict[str, str]:
        """Liveness (no authentication)."""
        return {"status": "ok"}

    # Busiest first: a request is matched against the routers in this order.
    for module in (meters, users, packages, groups, audit, exports):
        app.include_router(module.router)
    for name in EXTENSION_ROUTERS:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        app.include_router(mod.router)
    return app


def app_from_env() -> FastAPI:
    """App factory for ``uvicorn --factory`` and multi-process serving (``serve --workers``).

    Reads ``AMIUP_UMS_DB``, ``AMIUP_UMS_DATA_DIR``, ``AMIUP_UMS_THREADS`` and
    ``AMIUP_UMS_INLINE_READS`` (1 or 0; unset: by store kind); the store must be migrated
    already (``amiup ums serve`` does that once before starting workers).
    """
    import os
    from pathlib import Path

    from amiup.ums.store import open_store

    data_dir = os.environ.get("AMIUP_UMS_DATA_DIR")
    store = open_store(os.environ.get("AMIUP_UMS_DB") or None,
                       data_dir=Path(data_dir) if data_dir else None, migrate=False)
    threads = int(os.environ.get("AMIUP_UMS_THREADS", "0")) or None
    inline = os.environ.get("AMIUP_UMS_INLINE_READS", "")
    return create_app(store, threads=threads, freeze_gc=True,
                      inline_reads=None if inline not in ("0", "1") else inline == "1")
