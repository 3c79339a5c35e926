"""`amiup ums worker` and `amiup ums campaign ...`: the campaign part of the UMS command line.

Registered in ``amiup.cli.ums`` with one line (:func:`register`). The worker ticks campaigns
and, with an in-process head-end, claims and delivers too. ``--headend none`` (separate
head-end processes pull work through the head-end HTTP API) leaves delivery to them;
``--headend sim:FILE`` drives the simulated fleet stored in FILE (demos, tests, benches).
Stop it with SIGTERM or Ctrl-C; ``kill -9`` is safe too (see ``docs/campaigns.md``).

Campaign commands act as the user behind ``--token`` (an API token, as the REST API does), so
separation of duties holds on the command line too: the approver is a different person.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import typer

from amiup.errors import error

if TYPE_CHECKING:  # the CLI loads for every `amiup` command: import the heavy parts lazily
    from amiup.ums.models import Campaign
    from amiup.ums.store import Store
    from amiup.ums.worker import HeadEnd


def _headend(spec: str, anchors_file: Path | None) -> HeadEnd | None:
    if spec == "none":
        return None
    if spec.startswith("sim:"):
        from amiup.fleet.sim import SimFleet, SimHeadEnd

        anchors = None
        if anchors_file is not None:
            from amiup.trust.anchors import TrustAnchors

            anchors = TrustAnchors.from_bytes(anchors_file.read_bytes())
        return SimHeadEnd(SimFleet(Path(spec[4:])), anchors=anchors)
    raise error("invalid-argument", f"--headend: none or sim:FILE, not {spec!r}")


def worker(
    db: str = typer.Option(None, "--db", envvar="AMIUP_UMS_DB",
                           help="store URL (default: SQLite in the data dir)"),
    data_dir: Path = typer.Option(None, "--data-dir", envvar="AMIUP_UMS_DATA_DIR",
                                  help="data directory of the store"),
    worker_id: str = typer.Option("", "--id", help="stable id; a restart under it recovers"),
    headend: str = typer.Option("none", "--headend", help="none | sim:FILE"),
    order_key: Path = typer.Option(None, "--order-key", help="utility private key (PEM)"),
    sim_anchors: Path = typer.Option(None, "--sim-anchors", help="meters' anchors (CBOR)"),
    batch: int = typer.Option(500, "--batch", min=1, help="jobs per claim"),
    lease: float = typer.Option(300.0, "--lease", min=0.001, help="lease seconds"),
    idle: float = typer.Option(0.5, "--idle", min=0.0, help="sleep when there is no work"),
    until_done: bool = typer.Option(False, "--until-done", help="exit when nothing runs"),
) -> None:
    """Run a UMS worker: tick campaigns, claim work, apply head-end reports."""
    from sqlalchemy import select

    from amiup.ums import states as st
    from amiup.ums.models import Campaign
    from amiup.ums.scheduler import OrderSigner
    from amiup.ums.store import open_store
    from amiup.ums.worker import Worker

    if headend != "none" and order_key is None:
        raise error("invalid-argument", "an in-process head-end needs --order-key (SEC-3)")
    signer = None
    if order_key is not None:
        from amiup.trust.keys import load_private_key

        signer = OrderSigner(load_private_key(order_key))
    store = open_store(db, data_dir=data_dir, migrate=False)
    he = _headend(headend, sim_anchors)
    wid = worker_id or f"{socket.gethostname()}-{os.getpid()}"
    w = Worker(store, he, worker_id=wid, signer=signer, batch=batch, lease_s=lease)
    stopping = False

    def _stop(_sig: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)

    def done() -> bool:
        if stopping:
            return True
        if not until_done:
            return False
        with store.session() as s:
            return s.execute(
                select(Campaign.id).where(Campaign.state == st.RUNNING).limit(1)
            ).first() is None

    steps = w.run(clock=time.time, idle_sleep=idle, stop=done)
    typer.echo(f"worker {wid}: {steps} steps")
    store.dispose()


campaign_app = typer.Typer(help="Campaigns: create, approve, start, pause, resume, ...",
                           no_args_is_help=True)
_TOKEN = typer.Option(..., "--token", envvar="AMIUP_TOKEN", help="your API token")
_DB = typer.Option(None, "--db", envvar="AMIUP_UMS_DB", help="store URL")
_DIR = typer.Option(None, "--data-dir", envvar="AMIUP_UMS_DATA_DIR", help="data directory")


def register(app: typer.Typer) -> None:
    """Attach ``worker`` and ``campaign`` to the ``amiup ums`` app."""
    app.command("worker")(worker)
    app.add_typer(campaign_app, name="campaign")


def _target(text: str) -> dict[str, object]:
    kind, _, rest = text.partition(":")
    if kind == "fleet" and not rest:
        return {"kind": "fleet"}
    if kind == "meters" and rest:
        return {"kind": "meters", "meters": [m for m in rest.split(",") if m]}
    if kind == "group" and rest:
        return {"kind": "group", "group": rest}
    if kind == "filter" and rest:
        return {"kind": "filter", "filter": rest}
    raise error("invalid-argument", "--target: fleet | meters:A,B | group:NAME | filter:EXPR")


def _activation(text: str) -> dict[str, object]:
    if text in ("now", "on-command"):
        return {"mode": text}
    if text.startswith("at:"):
        from amiup.ums.windows import utc

        return {"mode": "at", "at": utc(text[3:])}
    raise error("invalid-argument", "--activation: now | on-command | at:ISO-TIME")


def _size(text: str) -> int | str:
    return int(text) if text.isdigit() else text


def _open(db: str | None, data_dir: Path | None) -> Store:
    from amiup.ums.store import open_store

    return open_store(db, data_dir=data_dir, migrate=False)


def _run(db: str | None, data_dir: Path | None, token: str, fn: object) -> object:
    """Open the store, authenticate the token, run ``fn(session, principal, now)``."""
    from amiup.ums import auth

    store = _open(db, data_dir)
    try:
        now = time.time()
        with store.session() as s:
            p = auth.authenticate_token(s, token, now=now)
            return fn(s, p, now)  # type: ignore[operator]
    finally:
        store.dispose()


def _show(c: Campaign) -> None:
    typer.echo(f"campaign {c.id} {c.name!r}: {c.state}"
               + (f" ({c.state_reason})" if c.state_reason else ""))


@campaign_app.command("create")
def campaign_create(
    name: str = typer.Option(..., "--name"),
    package: int = typer.Option(..., "--package", help="catalog package id"),
    target: str = typer.Option("fleet", "--target",
                               help="fleet | meters:A,B | group:NAME | filter:EXPR"),
    pilot: str = typer.Option("0", "--pilot", help="pilot size: count or N%"),
    step: list[str] = typer.Option([], "--step", help="cumulative wave size (repeat)"),
    window: list[str] = typer.Option([], "--window", help='e.g. "mon-fri 22:00-05:00"'),
    blackout: list[str] = typer.Option([], "--blackout", help="ISO date (repeat)"),
    tz: str = typer.Option("UTC", "--tz", help="IANA time zone of windows and blackouts"),
    activation: str = typer.Option("now", "--activation", help="now | on-command | at:ISO"),
    gate: float = typer.Option(0.95, "--gate", help="success rate to open the next wave"),
    threshold: float = typer.Option(0.05, "--threshold", help="failure rate that halts"),
    timeout: float = typer.Option(7 * 86400.0, "--timeout", help="per-assignment seconds"),
    max_attempts: int = typer.Option(5, "--max-attempts"),
    backoff: float = typer.Option(60.0, "--backoff", help="first retry delay, seconds"),
    on_conflict: str = typer.Option("skip", "--on-conflict", help="skip | fail"),
    token: str = _TOKEN, db: str = _DB, data_dir: Path = _DIR,
) -> None:
    """Create a draft campaign (resolves the target and plans the waves now)."""
    from amiup.ums import campaigns as C

    spec = C.CampaignSpec(
        name=name, package_id=package, target=_target(target),
        waves={"pilot": _size(pilot), "steps": [_size(x) for x in step]},
        success_gate=gate, failure_threshold=threshold, windows=window,
        blackout_dates=blackout, timezone=tz, activation=_activation(activation),
        retry={"max_attempts": max_attempts, "backoff_s": backoff},
        assignment_timeout_s=timeout, on_conflict=on_conflict,
    )
    c: Campaign = _run(db, data_dir, token,  # type: ignore[assignment]
                       lambda s, p, now: C.create_campaign(s, actor=p, spec=spec, now=now))
    _show(c)
    typer.echo(json.dumps(c.target.get("resolved", {})))


def _lifecycle(name: str, doc: str) -> None:
    def command(campaign_id: int = typer.Argument(...), token: str = _TOKEN, db: str = _DB,
                data_dir: Path = _DIR) -> None:
        from amiup.ums import campaigns as C

        fn = {"approve": C.approve, "start": C.start, "pause": C.pause, "resume": C.resume,
              "cancel": C.cancel, "activate": C.activate_now}[name]
        c: Campaign = _run(db, data_dir, token,  # type: ignore[assignment]
                           lambda s, p, now: fn(s, actor=p, campaign_id=campaign_id, now=now))
        _show(c)

    command.__doc__ = doc
    campaign_app.command(name)(command)


for _name, _doc in (("approve", "Approve (an approver who is not the creator)."),
                    ("start", "Start an approved campaign."),
                    ("pause", "Pause: nothing new goes out."),
                    ("resume", "Resume a paused or halted campaign."),
                    ("cancel", "Cancel the campaign and its active assignments."),
                    ("activate", "Activate staged images now (on-command activation).")):
    _lifecycle(_name, _doc)


@campaign_app.command("retry")
def campaign_retry(campaign_id: int = typer.Argument(...), token: str = _TOKEN, db: str = _DB,
                   data_dir: Path = _DIR) -> None:
    """Put failed and expired assignments back to pending."""
    from amiup.ums import campaigns as C

    n = _run(db, data_dir, token,
             lambda s, p, now: C.retry_failed(s, actor=p, campaign_id=campaign_id, now=now))
    typer.echo(f"{n} assignments retried")


@campaign_app.command("show")
def campaign_show(campaign_id: int = typer.Argument(...), token: str = _TOKEN, db: str = _DB,
                  data_dir: Path = _DIR) -> None:
    """Progress of a campaign as JSON (states, waves, failure reasons)."""
    from amiup.ums import campaigns as C

    def show(s: object, p: object, now: float) -> object:
        from amiup.ums import auth

        auth.require(p, "campaign.read")  # type: ignore[arg-type]
        return C.progress(s, campaign_id=campaign_id)  # type: ignore[arg-type]

    typer.echo(json.dumps(_run(db, data_dir, token, show), indent=2))


if __name__ == "__main__":  # python -m amiup.fleet.worker_cli --db URL ...
    typer.run(worker)
