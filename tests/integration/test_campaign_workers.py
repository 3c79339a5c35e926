"""Worker processes: kill -9 in the middle of a 10k-meter campaign, and two workers on PostgreSQL.

Real `python -m amiup.fleet.worker_cli worker` processes run against a store file (or the
PostgreSQL server of scripts/postgres.sh) and a simulated fleet file, so a meter outlives the
worker that drives it. Evidence is counted, not timed: activations per meter (from the
simulated meters) and confirmations per assignment (from the hash-chained audit).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from amiup.fleet.sim import SimFleet
from amiup.fleet.wiring import World
from amiup.trust.keys import save_private_key
from amiup.ums import audit
from amiup.ums.models import AuditEntry
from amiup.ums.store import Store
from reqmark import req
from support_campaign import campaign_state, launch, states, world
from support_ums import make_store, sqlite_store_fixture  # noqa: F401

FAST_RETRY = {"backoff_s": 0.05, "jitter": 0, "max_attempts": 50}


def worker_cmd(store: Store, w: World, tmp: Path, wid: str, sim: Path, *, batch: int = 200,
               verify: bool = True) -> list[str]:
    """The command line of one worker process (``verify``: meters check every order)."""
    key, anchors = tmp / "utility.pem", tmp / "anchors.cbor"
    if not key.exists():
        save_private_key(w.keys.utility, key)
        anchors.write_bytes(w.keys.anchors.to_bytes())
    return [sys.executable, "-m", "amiup.fleet.worker_cli",
            "--db", store.engine.url.render_as_string(hide_password=False),
            "--headend", f"sim:{sim}", "--order-key", str(key),
            *(["--sim-anchors", str(anchors)] if verify else []),
            "--id", wid, "--batch", str(batch), "--idle", "0.01", "--until-done"]


def _json(value: object) -> dict[str, list[int]]:
    """Audit before/after are stored as canonical JSON text."""
    return value if isinstance(value, dict) else json.loads(str(value))


def confirmations(store: Store, cid: int) -> Counter[int]:
    """How many times the audit trail records each assignment becoming confirmed."""
    seen: Counter[int] = Counter()
    with store.session() as s:
        for (after,) in s.execute(select(AuditEntry.after).where(
                AuditEntry.action == "assignment.confirmed",
                AuditEntry.object == f"campaign:{cid}")):
            seen.update(_json(after)["assignments"])
    return seen


def wait_confirmed(db: Path, at_least: int, proc: subprocess.Popen[bytes]) -> int:
    """Poll the store file read-only until ``at_least`` assignments are confirmed."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        try:
            (n,) = con.execute(
                "SELECT count(*) FROM assignments WHERE state='confirmed'").fetchone()
        finally:
            con.close()
        if n >= at_least or proc.poll() is not None:
            return int(n)
        time.sleep(0.02)
    raise AssertionError("the worker made no progress")


@pytest.mark.slow
@req("UMS-8", "UMS-5", "SEC-5")
def test_kill_9_during_a_10k_campaign_loses_and_duplicates_nothing(
    sqlite_store: Store, tmp_path: Path
) -> None:
    store = sqlite_store
    n = 10_000
    sim = tmp_path / "fleet.sqlite"
    w = world(store, n, cells=25, sim_path=sim)
    w.sim.close()
    cid = launch(w, waves={"pilot": 50, "steps": ["20%"]}, retry=FAST_RETRY,
                 now=time.time())
    cmd = worker_cmd(store, w, tmp_path, "w1", sim, batch=500, verify=False)  # SEC-3: elsewhere
    db = tmp_path / "ums.sqlite"
    kills = 0
    for target in (1500, 5000):  # kill -9 twice, at different stages of the rollout
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_confirmed(db, target, proc)
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                kills += 1
            proc.wait()
    assert kills == 2
    done = subprocess.run(cmd, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-2000:]

    assert campaign_state(store, cid) == "completed"
    assert states(store, cid) == {"confirmed": n}
    activations = SimFleet(sim).activations("ami_app")
    assert len(activations) == n and set(activations.values()) == {1}  # exactly once each
    seen = confirmations(store, cid)
    assert len(seen) == n and set(seen.values()) == {1}
    with store.session() as s:
        assert audit.verify(s).ok


@pytest.fixture(name="pg_store")
def pg_store_fixture(tmp_path: Path) -> Iterator[Store]:
    """PostgreSQL only: several workers are a PostgreSQL feature (SKIP LOCKED)."""
    yield from make_store("postgresql", tmp_path)


@pytest.mark.postgres
@pytest.mark.slow
@req("UMS-12", "UMS-5")
def test_two_workers_on_postgresql_never_process_one_assignment_twice(
    pg_store: Store, tmp_path: Path
) -> None:
    store = pg_store
    n = 2000
    sim1, sim2 = tmp_path / "fleet1.sqlite", tmp_path / "fleet2.sqlite"
    w = world(store, n, cells=10, sim_path=sim1)
    w.sim.close()
    shutil.copy(sim1, sim2)  # both head-ends reach every meter
    cid = launch(w, retry=FAST_RETRY, now=time.time())
    procs = [subprocess.Popen(worker_cmd(store, w, tmp_path, wid, sim, batch=100),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for wid, sim in (("a", sim1), ("b", sim2))]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()[-2000:]
    assert states(store, cid) == {"confirmed": n}
    # each assignment was handed out exactly once, and both workers got a share
    offered: dict[str, Counter[int]] = {}
    with store.session() as s:
        for actor, after in s.execute(select(AuditEntry.actor, AuditEntry.after).where(
                AuditEntry.action == "assignment.offered")):
            offered.setdefault(actor, Counter()).update(_json(after)["assignments"])
    assert set(offered) == {"worker:a", "worker:b"}
    total = offered["worker:a"] + offered["worker:b"]
    assert len(total) == n and set(total.values()) == {1}
    acts = Counter(SimFleet(sim1).activations("ami_app"))
    acts.update(SimFleet(sim2).activations("ami_app"))
    assert len(acts) == n and set(acts.values()) == {1}
    assert confirmations(store, cid).most_common(1)[0][1] == 1
