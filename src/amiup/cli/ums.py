"""`amiup ums`: set up the UMS store, serve the API, manage users, verify and export the audit.

Every command takes ``--db URL`` (or ``$AMIUP_UMS_DB``); without it the embedded SQLite file
in ``--data-dir`` (or ``$AMIUP_UMS_DATA_DIR``) is used. Commands that act directly on the
store are audited with the actor ``cli:<os user>``: whoever can reach the database is
trusted as an administrator, which is why the API, not the CLI, is what people use.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from sqlalchemy import select

from amiup.errors import error

if TYPE_CHECKING:
    from amiup.ums.store import Store

app = typer.Typer(help="Upgrade Management System: store, API server, users, audit.",
                  no_args_is_help=True)
user_app = typer.Typer(help="Users, roles and API tokens.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit trail.", no_args_is_help=True)
key_app = typer.Typer(help="Vendor keys the catalog trusts.", no_args_is_help=True)
pkg_app = typer.Typer(help="The package catalog.", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(audit_app, name="audit")
app.add_typer(key_app, name="vendor-key")
app.add_typer(pkg_app, name="package")

DbOpt = Annotated[str | None, typer.Option("--db", envvar="AMIUP_UMS_DB",
                                           help="store URL (sqlite:///F or postgresql://...)")]
DirOpt = Annotated[Path | None, typer.Option("--data-dir", envvar="AMIUP_UMS_DATA_DIR",
                                             help="data directory (SQLite file, packages)")]


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:
        return "cli"


def _open(db: str | None, data_dir: Path | None, *, migrate: bool = False) -> Store:
    """Open the store; commands other than init/serve/worker need one that exists already."""
    from sqlalchemy import inspect
    from sqlalchemy.engine import make_url

    from amiup.ums.store import default_data_dir, default_url, normalize_url, open_store

    url = normalize_url(db) if db else default_url(Path(data_dir or default_data_dir()))
    if not migrate:
        parsed = make_url(url)
        # Refuse before connecting: SQLite would create an empty file on first connect.
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:") \
                and not Path(parsed.database).exists():
            raise error("not-found", f"no UMS store at {parsed.database} (run `amiup ums init`)")
    store = open_store(db, data_dir=data_dir, migrate=migrate)
    if not migrate and not inspect(store.engine).has_table("alembic_version"):
        store.dispose()
        raise error("not-found", "the database holds no UMS store (run `amiup ums init`)")
    return store


def _password(env: str | None, prompt: bool) -> str | None:
    if env:
        value = os.environ.get(env)
        if not value:
            raise error("invalid-argument", f"${env} is empty or unset")
        return value
    if prompt:
        return str(typer.prompt("password", hide_input=True, confirmation_prompt=True))
    return None


@app.command()
def init(db: DbOpt = None, data_dir: DirOpt = None,
         admin: Annotated[str, typer.Option(help="name of the first admin")] = "admin",
         password_env: Annotated[str | None, typer.Option(
             help="read the admin's password from this environment variable")] = None,
         ) -> None:
    """Create or migrate the store and the first admin; prints the admin's API token once."""
    from amiup.ums import auth
    from amiup.ums.models import User

    store = _open(db, data_dir, migrate=True)
    try:
        with store.session() as s:
            exists = s.scalar(select(User.id).limit(1)) is not None
        if exists:
            typer.echo(f"store at revision {store.current_revision()}; users exist already")
            return
        with store.session() as s:
            user = auth.create_user(s, username=admin, password=_password(password_env, False),
                                    roles=["admin"], now=time.time(), actor=_actor())
            token, _ = auth.issue_token(s, user=user, name="init", now=time.time())
        typer.echo(f"store at revision {store.current_revision()}; admin {admin!r} created")
        typer.echo(f"admin API token (shown once): {token}")
    finally:
        store.dispose()


@app.command()
def serve(db: DbOpt = None, data_dir: DirOpt = None,
          host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="TCP port")] = 8080,
          threads: Annotated[int, typer.Option(
              help="threads running request handlers (a few suit SQLite best)")] = 8,
          workers: Annotated[int, typer.Option(
              help="server processes (all state is in the store, so they can share it)")] = 1,
          ) -> None:
    """Run the REST API (OpenAPI at /docs and /openapi.json)."""
    import uvicorn

    from amiup.ums.store import default_data_dir

    _open(db, data_dir, migrate=True).dispose()  # migrate once, before any worker starts
    if workers > 1:
        os.environ["AMIUP_UMS_DATA_DIR"] = str(data_dir or default_data_dir())
        os.environ["AMIUP_UMS_THREADS"] = str(max(1, threads))
        if db:
            os.environ["AMIUP_UMS_DB"] = db
        uvicorn.run("amiup.ums.api:app_from_env", factory=True, workers=workers, host=host,
                    port=port, log_level="warning")
        return
    from amiup.ums.api import create_app

    store = _open(db, data_dir)
    try:
        uvicorn.run(create_app(store, threads=max(1, threads), freeze_gc=True), host=host,
                    port=port, log_level="warning")
    finally:
        store.dispose()


@user_app.command("add")
def user_add(username: str,
             role: Annotated[list[str], typer.Option("--role", help="repeat for several")],
             db: DbOpt = None, data_dir: DirOpt = None,
             password_env: Annotated[str | None, typer.Option(
                 help="read the password from this environment variable")] = None,
             prompt: Annotated[bool, typer.Option(help="ask for a password")] = False) -> None:
    """Add a user with roles (viewer, operator, approver, uploader, admin)."""
    from amiup.ums import auth

    store = _open(db, data_dir)
    try:
        with store.session() as s:
            auth.create_user(s, username=username, password=_password(password_env, prompt),
                             roles=role, now=time.time(), actor=_actor())
        typer.echo(f"user {username!r} added with roles {sorted(set(role))}")
    finally:
        store.dispose()


@user_app.command("list")
def user_list(db: DbOpt = None, data_dir: DirOpt = None) -> None:
    """List users and their roles."""
    from amiup.ums.models import User

    store = _open(db, data_dir)
    try:
        with store.session(readonly=True) as s:
            for u in s.scalars(select(User).order_by(User.username)):
                state = "" if u.active else " (disabled)"
                typer.echo(f"{u.username}\t{','.join(u.roles)}{state}")
    finally:
        store.dispose()


@user_app.command("token")
def user_token(username: str, db: DbOpt = None, data_dir: DirOpt = None,
               name: Annotated[str, typer.Option(help="label of the token")] = "cli",
               ttl: Annotated[float | None, typer.Option(help="lifetime in seconds")] = None,
               ) -> None:
    """Issue an API token for a user (printed once; only its hash is stored)."""
    from amiup.ums import auth
    from amiup.ums.models import User

    store = _open(db, data_dir)
    try:
        with store.session() as s:
            user = s.scalar(select(User).where(User.username == username))
            if user is None:
                raise error("not-found", f"no user {username!r}")
            token, _ = auth.issue_token(s, user=user, name=name, now=time.time(), ttl_s=ttl)
        typer.echo(token)
    finally:
        store.dispose()


@audit_app.command("verify")
def audit_verify(db: DbOpt = None, data_dir: DirOpt = None) -> None:
    """Check the audit hash chain; exit non-zero naming the first bad row."""
    from amiup.ums import audit

    store = _open(db, data_dir)
    try:
        with store.session(readonly=True) as s:
            res = audit.verify(s)
    finally:
        store.dispose()
    if not res.ok:
        raise error("audit-broken", f"first bad row: seq {res.first_bad}: {res.reason}")
    typer.echo(f"ok: {res.rows} rows, head {res.head}")


@app.command("export")
def export_cmd(kind: Annotated[str, typer.Argument(help="inventory | campaign | audit")],
               db: DbOpt = None, data_dir: DirOpt = None,
               format: Annotated[str, typer.Option("--format", help="csv or json")] = "csv",
               filter: Annotated[str | None, typer.Option(help="meter filter")] = None,
               campaign: Annotated[int | None, typer.Option(help="campaign id")] = None,
               out: Annotated[Path | None, typer.Option(help="file (default: stdout)")] = None,
               ) -> None:
    """Export inventory, a campaign's assignments or the audit trail as CSV or JSON."""
    from amiup.ums import export

    store = _open(db, data_dir)
    try:
        with store.session(readonly=True) as s:
            chunks = export.render(s, kind, format, filter_expr=filter, campaign_id=campaign)
            if out is None:
                for chunk in chunks:
                    sys.stdout.write(chunk)
            else:
                tmp = out.with_name(f".{out.name}.tmp")
                with open(tmp, "w", encoding="utf-8", newline="") as fh:
                    for chunk in chunks:
                        fh.write(chunk)
                os.replace(tmp, out)
    finally:
        store.dispose()


@key_app.command("add")
def vendor_key_add(vendor: Annotated[str, typer.Option(help="vendor id in manifests")],
                   key: Annotated[Path, typer.Option(help="vendor public key (PEM)")],
                   db: DbOpt = None, data_dir: DirOpt = None) -> None:
    """Trust a vendor's public key for that vendor's packages."""
    from amiup.trust import key_id, load_public_key
    from amiup.ums import catalog

    pub = load_public_key(key)
    store = _open(db, data_dir)
    try:
        with store.session() as s:
            catalog.add_vendor_key(s, vendor=vendor, public_key=pub, now=time.time(),
                                   actor=_actor())
        typer.echo(f"vendor key {key_id(pub)} trusted for {vendor!r}")
    finally:
        store.dispose()


@pkg_app.command("import")
def package_import(file: Path, db: DbOpt = None, data_dir: DirOpt = None) -> None:
    """Verify a .amiup file against the registered vendor keys and add it to the catalog."""
    from amiup.ums import catalog

    try:
        data = file.read_bytes()
    except OSError as exc:
        raise error("io-error", f"{file}: {exc.strerror}") from None
    store = _open(db, data_dir)
    try:
        pkg = catalog.import_package(store, data, now=time.time(), actor=_actor())
        typer.echo(json.dumps(catalog.package_dict(pkg), sort_keys=True))
    finally:
        store.dispose()


@pkg_app.command("list")
def package_list(db: DbOpt = None, data_dir: DirOpt = None,
                 component: Annotated[str | None, typer.Option()] = None,
                 model: Annotated[str | None, typer.Option()] = None) -> None:
    """List catalog entries."""
    from amiup.ums import catalog

    store = _open(db, data_dir)
    try:
        with store.session(readonly=True) as s:
            _, rows = catalog.search(s, component=component, model=model, limit=1000)
            for p in rows:
                typer.echo(f"{p.id}\t{p.digest[:16]}\t{p.vendor}\t{p.model}\t{p.component}\t"
                           f"{p.version}{'  [metrology]' if p.metrology else ''}")
    finally:
        store.dispose()


def _register_extensions() -> None:
    """Commands of other UMS modules (campaigns, worker) register here, one line each."""
    # e.g. from amiup.cli import ums_campaign; ums_campaign.register(app)
    __import__("amiup.fleet.worker_cli", fromlist=["register"]).register(app)  # worker, campaign


_register_extensions()
