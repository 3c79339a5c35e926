"""Campaign benchmarks: assignment transitions per second, and creating big campaigns.

    .venv/bin/python bench/ums.py transitions [--meters 20000] [--pg URL]
    .venv/bin/python bench/ums.py campaign [--sizes 100000,1000000] [--pg URL]
    (or the same sections directly: .venv/bin/python bench/ums_campaigns.py transitions ...)

``transitions``: a running single-wave campaign of ``--meters`` meters is driven to the end
by worker processes (``amiup.ums.worker.Worker``) with the in-process simulated head-end
(no airtime: it answers at once, so the store and the scheduler are what is measured). A
delivered meter walks pending -> offered -> transferring -> transferred -> verified ->
activated -> confirmed: 6 audited, conditional transitions. Rows: SQLite with 1 worker (with
and without signing the upgrade orders, ECDSA P-256), PostgreSQL with 1 and 2 workers. The
in-run baseline is the same number of bare single-row ``UPDATE ... WHERE id = ?`` statements
(executemany, one transaction per 500) on the same store: what the store itself costs.

``campaign``: the time to create a campaign over the whole fleet (target resolution,
compatibility and UMS-12 checks, wave planning per cell, bulk insert of the assignments),
for each size. The in-run baseline copies the same number of meter rows with one
``INSERT INTO ... SELECT`` inside the database. Goal: a 1M-meter campaign in < 30 s.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
T0 = 1_800_000_000.0
HOPS = 6  # transitions of one delivered meter


# ------------------------------------------------------------------ world building, fast


def fast_seed(store: Any, n: int, *, cells: int) -> None:
    """Insert ``n`` meters (model M1, ami_app 1.0.0) with raw bulk statements."""
    from amiup.ums.versions import version_key

    key = version_key("1.0.0")
    meters = [(f"m{i:07d}", "acme", "M1", "A", "north", f"cell{i % cells:05d}", "[]", "{}", 0,
               T0) for i in range(1, n + 1)]
    cols = "serial, vendor, model, hw_rev, region, cell, groups, attributes, order_counter, " \
           "created_at"
    with store.session() as s:
        conn = s.connection()
        if conn.dialect.name == "postgresql":
            raw = conn.connection.dbapi_connection
            with raw.cursor() as cur, cur.copy(f"COPY meters ({cols}) FROM STDIN") as cp:
                for r in meters:
                    cp.write_row(r)
        else:
            conn.exec_driver_sql(f"INSERT INTO meters ({cols}) VALUES "
                                 f"({', '.join('?' for _ in range(10))})", meters)
        conn.exec_driver_sql(
            "INSERT INTO meter_components (meter_id, component, running_version, running_key, "
            f"security_seq, updated_at) SELECT id, 'ami_app', '1.0.0', '{key}', 0, {T0} "
            "FROM meters")


def make_world(url: str | None, n: int, *, cells: int) -> tuple[Any, Any, Any, Any, int]:
    """(store, keys, operator, approver, package id) over a fresh store with ``n`` meters."""
    from amiup.fleet.wiring import Keys, import_package, make_package, make_user
    from amiup.ums.store import open_store

    data_dir = Path(tempfile.mkdtemp(prefix="amiup-bench-campaign-"))
    atexit.register(shutil.rmtree, data_dir, True)
    store = open_store(url, data_dir=data_dir)
    keys = Keys.generate()
    pkg = import_package(store, keys, make_package(keys), now=T0)
    fast_seed(store, n, cells=cells)
    op = make_user(store, "op", ["operator"], now=T0)
    ap = make_user(store, "ap", ["approver"], now=T0)
    return store, keys, op, ap, pkg


def fresh_pg(base: str) -> str:
    """A new empty database on the PostgreSQL server of ``base`` (dropped by the OS later)."""
    import uuid

    from sqlalchemy import create_engine, text

    name = f"amiup_bench_{uuid.uuid4().hex[:8]}"
    eng = create_engine(base, isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    eng.dispose()
    return base.rsplit("/", 1)[0] + "/" + name


def drop_pg(base: str, url: str) -> None:
    from sqlalchemy import create_engine, text

    eng = create_engine(base, isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))
    eng.dispose()


# ------------------------------------------------------------------ transitions


def _child(args: argparse.Namespace) -> None:
    """One worker process: drive the campaign until nothing runs; print what it did."""
    from sqlalchemy import select

    from amiup.fleet.sim import SimFleet, SimHeadEnd
    from amiup.trust.keys import load_private_key
    from amiup.ums.models import Campaign, Meter
    from amiup.ums.scheduler import OrderSigner
    from amiup.ums.store import open_store
    from amiup.ums.worker import Worker

    tmp = Path(tempfile.mkdtemp(prefix="amiup-bench-campaign-"))
    atexit.register(shutil.rmtree, tmp, True)
    store = open_store(args.db, data_dir=tmp, migrate=False)
    with store.session() as s:
        serials = list(s.execute(select(Meter.serial)).scalars())
    sim = SimFleet()
    sim.add(serials, {"ami_app": "1.0.0"})
    signer = OrderSigner(load_private_key(Path(args.key))) if args.key else None
    w = Worker(store, SimHeadEnd(sim), worker_id=args.worker_id, signer=signer,
               batch=args.batch, lease_s=600)
    t0, transitions, steps = time.time(), 0, 0
    while True:
        stats = w.step(time.time())
        transitions += stats.transitions
        steps += 1
        if stats.idle:
            with store.session() as s:
                if s.execute(select(Campaign.id).where(Campaign.state == "running")).first() \
                        is None:
                    break
    print(json.dumps({"start": t0, "end": time.time(), "transitions": transitions,
                      "steps": steps}))


def _baseline_updates(store: Any, n: int) -> float:
    """Seconds for ``n`` bare single-row UPDATEs by id (executemany, 500 per transaction)."""
    from sqlalchemy import text

    with store.session() as s:
        ids = [i for (i,) in s.execute(text("SELECT id FROM assignments ORDER BY id"))]
    rows = [{"i": ids[k % len(ids)], "t": float(k)} for k in range(n)]
    t = time.perf_counter()
    for k in range(0, n, 500):
        with store.session() as s:
            s.execute(text("UPDATE assignments SET updated_at = :t WHERE id = :i"),
                      rows[k : k + 500])
    return time.perf_counter() - t


def _one_run(url: str | None, n: int, workers: int, sign: bool, batch: int) -> dict[str, Any]:
    from sqlalchemy import func, select

    from amiup.trust.keys import save_private_key
    from amiup.ums import campaigns as C
    from amiup.ums.models import Assignment

    store, keys, op, ap, pkg = make_world(url, n, cells=max(1, n // 200))
    with store.session() as s:
        cid = C.create_campaign(s, actor=op, now=T0, spec=C.CampaignSpec(
            name="bench", package_id=pkg, target={"kind": "fleet"})).id
    with store.session() as s:
        C.approve(s, actor=ap, campaign_id=cid, now=T0)
        C.start(s, actor=op, campaign_id=cid, now=T0)
    key = ""
    if sign:
        kdir = Path(tempfile.mkdtemp(prefix="amiup-bench-campaign-"))
        atexit.register(shutil.rmtree, kdir, True)
        kf = kdir / "utility.pem"
        save_private_key(keys.utility, kf)
        key = str(kf)
    db = store.engine.url.render_as_string(hide_password=False)
    procs = [subprocess.Popen([sys.executable, __file__, "_child", "--db", db, "--worker-id",
                               f"w{i}", "--key", key, "--batch", str(batch)],
                              stdout=subprocess.PIPE, text=True) for i in range(workers)]
    outs = [json.loads(p.communicate(timeout=3600)[0].strip().splitlines()[-1]) for p in procs]
    wall = max(o["end"] for o in outs) - min(o["start"] for o in outs)
    with store.session() as s:
        done = s.execute(select(func.count()).select_from(Assignment)
                         .where(Assignment.state == "confirmed")).scalar_one()
    transitions = done * HOPS
    base = _baseline_updates(store, transitions)
    store.dispose()
    return {"store": store.dialect, "workers": workers, "signed_orders": sign,
            "meters": n, "confirmed": done, "transitions": transitions, "wall_s": wall,
            "per_s": transitions / wall, "baseline_per_s": transitions / base,
            "ratio_to_baseline": (transitions / wall) / (transitions / base)}


def bench_transitions(args: argparse.Namespace) -> dict[str, Any]:
    n = args.meters
    runs = [_one_run(None, n, 1, False, args.batch), _one_run(None, n, 1, True, args.batch)]
    pg = args.pg or os.environ.get("AMIUP_TEST_PG")
    if pg:
        for workers in (1, 2):
            url = fresh_pg(pg)
            try:
                runs.append(_one_run(url, n, workers, True, args.batch))
            finally:
                drop_pg(pg, url)
    best_sqlite = max(r["per_s"] for r in runs if r["store"] == "sqlite")
    return {"runs": runs, "goal_sqlite_per_s": 20_000,
            "goal_met": best_sqlite >= 20_000, "postgresql": bool(pg)}


def print_transitions(res: dict[str, Any]) -> None:
    print("\n### Assignment transitions per second (6 per delivered meter, audited)\n")
    print("| store | workers | orders signed | meters | transitions | wall s | per s | "
          "bare UPDATE per s | ratio |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in res["runs"]:
        print(f"| {r['store']} | {r['workers']} | {'yes' if r['signed_orders'] else 'no'} | "
              f"{r['meters']:,} | {r['transitions']:,} | {r['wall_s']:.2f} | "
              f"{r['per_s']:,.0f} | {r['baseline_per_s']:,.0f} | "
              f"{r['ratio_to_baseline']:.2f} |")
    if not res["postgresql"]:
        print("\n(PostgreSQL rows skipped: set AMIUP_TEST_PG or pass --pg)")
    print(f"\ngoal >= 20,000 transitions/s on SQLite: {'met' if res['goal_met'] else 'NOT met'}")


# ------------------------------------------------------------------ campaign creation


def _create_once(url: str | None, n: int) -> dict[str, Any]:
    from sqlalchemy import text

    from amiup.ums import campaigns as C

    t = time.perf_counter()
    store, _keys, op, _ap, pkg = make_world(url, n, cells=max(1, n // 200))
    seed_s = time.perf_counter() - t
    t = time.perf_counter()
    with store.session() as s:
        c = C.create_campaign(s, actor=op, now=T0, spec=C.CampaignSpec(
            name="big", package_id=pkg, target={"kind": "fleet"},
            waves={"pilot": 100, "steps": ["1%", "10%", "50%"]}))
        assigned = c.target["resolved"]["assigned"]
    create_s = time.perf_counter() - t
    t = time.perf_counter()
    with store.session() as s:
        s.execute(text("CREATE TABLE bench_copy AS SELECT id, serial, cell FROM meters"))
    base_s = time.perf_counter() - t
    store.dispose()
    return {"store": store.dialect, "meters": n, "assigned": assigned, "seed_s": seed_s,
            "create_s": create_s, "baseline_copy_s": base_s,
            "ratio_to_baseline": create_s / base_s if base_s else None}


def bench_campaign(args: argparse.Namespace) -> dict[str, Any]:
    sizes = [int(x) for x in str(args.sizes).split(",")]
    runs = [_create_once(None, n) for n in sizes]
    pg = args.pg or os.environ.get("AMIUP_TEST_PG")
    if pg:
        for n in sizes:
            url = fresh_pg(pg)
            try:
                runs.append(_create_once(url, n))
            finally:
                drop_pg(pg, url)
    big = [r for r in runs if r["meters"] >= 1_000_000]
    return {"runs": runs, "goal_s": 30.0,
            "goal_met": {r["store"]: r["create_s"] < 30 for r in big} if big else None}


def print_campaign(res: dict[str, Any]) -> None:
    print("\n### Creating a campaign over the whole fleet (pilot 100, then 1%, 10%, 50%, "
          "rest)\n")
    print("| store | meters | assigned | create s | copy baseline s | ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in res["runs"]:
        print(f"| {r['store']} | {r['meters']:,} | {r['assigned']:,} | {r['create_s']:.2f} | "
              f"{r['baseline_copy_s']:.2f} | {r['ratio_to_baseline']:.1f} |")
    if res["goal_met"] is not None:
        verdicts = ", ".join(f"{store} {'met' if ok else 'NOT met'}"
                             for store, ok in res["goal_met"].items())
        print(f"\ngoal: 1M-meter campaign created in < 30 s: {verdicts}")


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """Options of these sections (shared with bench/ums.py)."""
    ap.add_argument("--pg", default=None, help="PostgreSQL URL (default: $AMIUP_TEST_PG)")
    ap.add_argument("--sizes", default="100000,1000000", help="campaign sizes to create")
    ap.add_argument("--batch", type=int, default=500, help="jobs per worker claim")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("section", choices=["transitions", "campaign", "_child"])
    ap.add_argument("--meters", type=int, default=20_000)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--db", default=None)
    ap.add_argument("--worker-id", default="w0")
    ap.add_argument("--key", default="")
    add_arguments(ap)
    args = ap.parse_args()
    if args.section == "_child":
        _child(args)
        return
    run, show = {"transitions": (bench_transitions, print_transitions),
                 "campaign": (bench_campaign, print_campaign)}[args.section]
    res = run(args)
    print(json.dumps(res, indent=2)) if args.json else show(res)


if __name__ == "__main__":
    main()
