"""`amiup ums` end to end as a user runs it: init, users, audit verify (and its failure), export."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text

from amiup.cli.main import main
from amiup.ums.store import Store
from reqmark import req
from support_ums import store_fixture  # noqa: F401


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def amiup(capsys: pytest.CaptureFixture[str],
          monkeypatch: pytest.MonkeyPatch) -> Callable[..., Run]:
    """Run `amiup ...` in-process through the real entry point (exit code, stdout, stderr)."""

    def run(*args: str, data_dir: Path) -> Run:
        monkeypatch.setenv("AMIUP_UMS_DATA_DIR", str(data_dir))
        monkeypatch.setattr(sys, "argv", ["amiup", *args])
        capsys.readouterr()
        code = 0
        try:
            main()
        except SystemExit as ex:
            code = int(ex.code or 0)
        out, err = capsys.readouterr()
        return Run(code, out, err)

    return run


@req("SEC-5", "UMS-11", "SEC-4")
def test_init_user_verify_detects_tampering_and_export(store: Store, tmp_path: Path,
                                                       amiup: Callable[..., Run]) -> None:
    db = store.url
    r = amiup("ums", "init", "--db", db, "--admin", "root-admin", data_dir=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "admin API token (shown once): amiup_" in r.stdout
    r = amiup("ums", "init", "--db", db, data_dir=tmp_path)  # idempotent
    assert r.returncode == 0 and "users exist already" in r.stdout
    r = amiup("ums", "user", "add", "bob", "--role", "operator", "--role", "viewer", "--db", db,
               data_dir=tmp_path)
    assert r.returncode == 0, r.stderr
    r = amiup("ums", "user", "add", "eve", "--role", "superuser", "--db", db, data_dir=tmp_path)
    assert r.returncode == 2 and r.stderr.startswith("error: invalid-argument:")
    r = amiup("ums", "audit", "verify", "--db", db, data_dir=tmp_path)
    assert r.returncode == 0 and r.stdout.startswith("ok: 3 rows"), r.stderr

    r = amiup("ums", "export", "audit", "--format", "json", "--db", db, data_dir=tmp_path)
    trail = json.loads(r.stdout)
    assert [x["action"] for x in trail] == ["user.create", "token.create", "user.create"]

    with store.engine.begin() as conn:  # an insider rewrites who created bob
        if store.dialect == "postgresql":
            conn.execute(text("ALTER TABLE audit DISABLE TRIGGER USER"))
        else:
            conn.execute(text("DROP TRIGGER audit_no_update"))
        conn.execute(text("UPDATE audit SET actor='someone-else' WHERE seq=3"))
    r = amiup("ums", "audit", "verify", "--db", db, data_dir=tmp_path)
    assert r.returncode == 1
    assert r.stderr.startswith("error: audit-broken:") and "seq 3" in r.stderr


@pytest.mark.parametrize("fmt", ["csv", "json"])
@req("UMS-11")
def test_export_inventory_to_file(tmp_path: Path, fmt: str, amiup: Callable[..., Run]) -> None:
    r = amiup("ums", "init", data_dir=tmp_path)
    assert r.returncode == 0, r.stderr
    out = tmp_path / f"inv.{fmt}"
    r = amiup("ums", "export", "inventory", "--format", fmt, "--out", str(out),
               data_dir=tmp_path)
    assert r.returncode == 0, r.stderr
    text_out = out.read_text()
    assert text_out.startswith("serial,") if fmt == "csv" else json.loads(text_out) == []


def test_commands_on_a_missing_store_say_so_and_create_nothing(
    amiup: Callable[..., Run], tmp_path: Path,
) -> None:
    where = tmp_path / "nowhere"
    for args in (("audit", "verify"), ("user", "list"), ("export", "inventory")):
        r = amiup("ums", *args, data_dir=where)
        assert r.returncode == 2, (args, r.stderr)
        assert r.stderr.startswith("error: not-found:") and "amiup ums init" in r.stderr
    assert not where.exists()
