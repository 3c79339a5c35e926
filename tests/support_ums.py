"""Shared UMS test fixtures: the same tests run on SQLite and on a real PostgreSQL server.

``store`` is parametrized over both stores. The PostgreSQL leg needs the server that
``scripts/postgres.sh start`` runs (it prints ``export AMIUP_TEST_PG=...``); without that
variable the leg is skipped with that reason. Each test gets its own database: a SQLite file
copied from a migrated template, or ``CREATE DATABASE ... TEMPLATE`` on PostgreSQL.
Import the fixtures into a test module with
``from support_ums import store_fixture  # noqa: F401`` (fixture name: ``store``).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from amiup.ums import auth
from amiup.ums.store import Store, open_store

PG_ENV = "AMIUP_TEST_PG"
NOW = 1_800_000_000.0
STORES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


_TEMPLATES: dict[str, str] = {}


def _sqlite_template() -> Path:
    """A migrated SQLite file, made once per test process and copied for each test."""
    if "sqlite" not in _TEMPLATES:
        d = Path(tempfile.mkdtemp(prefix="amiup-ums-tmpl-"))
        atexit.register(shutil.rmtree, d, True)
        open_store(None, data_dir=d).dispose()
        _TEMPLATES["sqlite"] = str(d / "ums.sqlite")
    return Path(_TEMPLATES["sqlite"])


def _pg_template(url: str) -> str:
    """A migrated PostgreSQL database, made once per test process, used as a template."""
    if "postgresql" not in _TEMPLATES:
        name = f"amiup_tmpl_{_worker()}_{uuid.uuid4().hex[:8]}"
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        open_store(_pg_url(url, name), data_dir=Path(tempfile.gettempdir())).dispose()

        def drop() -> None:
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()

        atexit.register(drop)
        _TEMPLATES["postgresql"] = name
    return _TEMPLATES["postgresql"]


def _pg_url(url: str, db: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + db


def make_store(kind: str, tmp_path: Path) -> Iterator[Store]:
    """A freshly migrated, empty store of ``kind`` in its own database."""
    if kind == "sqlite":
        shutil.copy(_sqlite_template(), tmp_path / "ums.sqlite")
        s = open_store(None, data_dir=tmp_path, migrate=False)
        yield s
        s.dispose()
        return
    url = os.environ.get(PG_ENV, "")
    if not url:
        pytest.skip(f"{PG_ENV} is unset: run `eval \"$(scripts/postgres.sh start)\"` first")
    tmpl = _pg_template(url)
    name = f"amiup_t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{tmpl}"'))
    s = open_store(_pg_url(url, name), data_dir=tmp_path, migrate=False)
    try:
        yield s
    finally:
        s.dispose()
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=STORES, name="store")
def store_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An empty, migrated store: SQLite and PostgreSQL legs."""
    yield from make_store(request.param, tmp_path)


@pytest.fixture(name="sqlite_store")
def sqlite_store_fixture(tmp_path: Path) -> Iterator[Store]:
    """An empty, migrated SQLite store (for tests whose subject is not the store)."""
    yield from make_store("sqlite", tmp_path)


def add_user(s: Store, username: str, roles: list[str], *, password: str | None = None) -> str:
    """Create a user with ``roles`` and return a fresh API token for it."""
    with s.session() as db:
        user = auth.create_user(db, username=username, password=password, roles=roles, now=NOW,
                                actor="test")
        token, _ = auth.issue_token(db, user=user, name="test", now=NOW)
    return token
