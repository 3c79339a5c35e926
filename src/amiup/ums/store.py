"""The UMS store: engine and session factory for SQLite (default) or PostgreSQL, and migrations.

Nothing is built at import: :func:`open_store` makes the engine when asked. SQLite runs in WAL
mode with foreign keys on; every SQLite session begins with ``BEGIN IMMEDIATE`` so writers
queue on the busy timeout instead of failing halfway through a read-then-write (the
hash-chained audit needs that). PostgreSQL is reached with ``postgresql+psycopg://``; a plain
``postgresql://`` URL is taken to mean psycopg 3.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from amiup.errors import error

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
SQLITE_BUSY_TIMEOUT_S = 30.0


def default_data_dir() -> Path:
    """Where the embedded store lives: ``$AMIUP_UMS_DATA_DIR`` or ``~/.local/share/amiup/ums``."""
    env = os.environ.get("AMIUP_UMS_DATA_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "amiup" / "ums"


def default_url(data_dir: Path) -> str:
    """The zero-setup store: one SQLite file in ``data_dir``."""
    return f"sqlite:///{(data_dir / 'ums.sqlite').as_posix()}"


def normalize_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` as psycopg 3 URLs."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _sqlite_setup(engine: Engine) -> None:
    """WAL, foreign keys, busy timeout; and our own BEGIN so we choose IMMEDIATE."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # pysqlite must not issue its own BEGIN
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(conn.get_execution_options().get("sqlite_begin", "BEGIN IMMEDIATE"))


class Store:
    """An opened UMS store: engine, session factory, blob directory for package files."""

    def __init__(self, url: str, *, data_dir: Path, echo: bool = False) -> None:
        self.url = normalize_url(url)
        self.data_dir = data_dir
        self.blob_dir = data_dir / "packages"
        if self.url.startswith("sqlite"):
            if self.url.startswith("sqlite:///") and ":memory:" not in self.url:
                Path(self.url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
            self.engine = create_engine(
                self.url, echo=echo,
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
            )
            _sqlite_setup(self.engine)
        elif self.url.startswith("postgresql"):
            self.engine = create_engine(
                self.url, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=20
            )
        else:
            raise error("invalid-argument", f"unsupported store URL scheme: {url.split(':')[0]}")
        self._factory = sessionmaker(self.engine, expire_on_commit=False)
        # Readers begin DEFERRED on SQLite so they never queue behind writers (WAL).
        self._read_factory = sessionmaker(
            self.engine.execution_options(sqlite_begin="BEGIN DEFERRED"), expire_on_commit=False
        )

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    @contextmanager
    def session(self, *, readonly: bool = False) -> Iterator[Session]:
        """A unit of work: commits on normal exit, rolls back on any exception.

        ``readonly=True`` only changes how SQLite begins (no write lock); it does not stop
        writes, so use it for reads only.

        Database failures surface as ``store-error``; integrity errors are left as they are
        so callers can map them (a second active assignment is a ``conflict``).
        """
        from sqlalchemy.exc import IntegrityError

        session = (self._read_factory if readonly else self._factory)()
        try:
            yield session
            session.commit()
        except IntegrityError:
            session.rollback()
            raise
        except SQLAlchemyError as exc:
            session.rollback()
            raise error("store-error", f"{type(exc).__name__}: {str(exc).splitlines()[0]}") from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def migrate(self, revision: str = "head") -> None:
        """Bring the schema up to ``revision`` with the migrations shipped in the package."""
        from alembic import command

        with self.engine.begin() as conn:
            command.upgrade(_alembic_config(conn), revision)

    def current_revision(self) -> str | None:
        """The Alembic revision the store is at (None when never migrated)."""
        from alembic.runtime.migration import MigrationContext

        with self.engine.execution_options(sqlite_begin="BEGIN DEFERRED").connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def dispose(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()


def _alembic_config(connection: Any) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


def open_store(
    url: str | None = None, *, data_dir: Path | None = None, migrate: bool = True,
    echo: bool = False,
) -> Store:
    """Open (and by default migrate) the store at ``url``, or the SQLite file in ``data_dir``."""
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    store = Store(url or default_url(data_dir), data_dir=data_dir, echo=echo)
    if migrate:
        try:
            store.migrate()
        except SQLAlchemyError as exc:
            store.dispose()
            raise error("store-error", f"migration failed: {str(exc).splitlines()[0]}") from exc
    return store
