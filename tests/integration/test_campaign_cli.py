"""`amiup ums campaign ...` (in-process CLI runner) and `amiup ums worker` (a real process)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import typer
from typer.testing import CliRunner

from amiup.errors import AmiupError
from amiup.fleet.worker_cli import register
from amiup.trust.keys import save_private_key
from amiup.ums.store import Store
from reqmark import req
from support_campaign import states, world
from support_ums import add_user, sqlite_store_fixture  # noqa: F401


def cli() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


@req("UMS-3", "SEC-4", "UMS-5")
def test_campaign_commands_and_a_worker_process_run_to_completion(
    sqlite_store: Store, tmp_path: Path
) -> None:
    store = sqlite_store
    sim = tmp_path / "fleet.sqlite"
    w = world(store, 30, cells=3, sim_path=sim)
    w.sim.close()
    op, ap = add_user(store, "op", ["operator"]), add_user(store, "ap", ["approver"])
    db = ["--db", store.engine.url.render_as_string(hide_password=False)]
    run = CliRunner().invoke
    app = cli()
    r = run(app, ["campaign", "create", "--name", "c1", "--package", str(w.package_id),
                  "--target", "filter:cell=cell001 or cell=cell002", "--pilot", "2",
                  "--step", "50%", "--window", "00:00-24:00", "--tz", "Europe/Paris",
                  "--token", op, *db])
    assert r.exit_code == 0, r.output
    assert r.output.startswith("campaign 1 'c1': draft")
    assert json.loads(r.output.splitlines()[1])["assigned"] == 20
    r = run(app, ["campaign", "approve", "1", "--token", op, *db])
    assert isinstance(r.exception, AmiupError) and r.exception.code == "forbidden"
    assert run(app, ["campaign", "approve", "1", "--token", ap, *db]).exit_code == 0
    assert "running" in run(app, ["campaign", "start", "1", "--token", op, *db]).output
    key = tmp_path / "utility.pem"
    save_private_key(w.keys.utility, key)
    worker = subprocess.run(
        [sys.executable, "-m", "amiup", "ums", "worker", *db, "--headend", f"sim:{sim}",
         "--order-key", str(key), "--id", "w", "--idle", "0", "--until-done"],
        capture_output=True, text=True, timeout=120)
    assert worker.returncode == 0, worker.stderr
    assert states(store, 1) == {"confirmed": 20}
    shown = json.loads(run(app, ["campaign", "show", "1", "--token", ap, *db]).output)
    assert shown["state"] == "completed" and shown["states"]["confirmed"] == 20


def test_worker_refuses_to_deliver_without_the_order_key(sqlite_store: Store) -> None:
    db = ["--db", sqlite_store.engine.url.render_as_string(hide_password=False)]
    r = CliRunner().invoke(cli(), ["worker", *db, "--headend", "sim:/nonexistent/x.sqlite"])
    assert isinstance(r.exception, AmiupError) and r.exception.code == "invalid-argument"
    assert "--order-key" in r.exception.detail
