"""A light simulated fleet and an in-process head-end driving it: the UMS's test bench.

Each simulated meter keeps, per component, the running version, a staged image and an
activation counter, plus its last accepted order counter, in a dict or in a small SQLite
file (so a meter outlives a ``kill -9`` of the worker that drives it, as a real one does).
:class:`SimHeadEnd` implements the worker's ``HeadEnd`` interface: for each job it reads the
meter first (an image already running is reported, never activated again), checks the
signed upgrade order as a meter would (signature, window, target, counter: SEC-3), transfers,
stages, activates per the order, and reads the version back. Meter state is committed
before the reports are returned, so a crash in between is seen on redelivery as "already
running", exactly once.

Faults for tests: a meter may be offline until some time (``unreachable``), its new image
may fail its self-test (the meter stays on the old version and says why), and a fraction of
transfers may break (``transfer-incomplete``), deterministically from a seed.

The full-fidelity path (real :mod:`amiup.meter` objects over the network simulator and the
head-end delivery engine) plugs into the same interface; this one is small and fast enough
to run a 10k-meter campaign in a test.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amiup.errors import AmiupError
from amiup.ums.scheduler import Job, Report


@dataclass(slots=True)
class SimComponent:
    """One component of a simulated meter."""

    running: str
    staged: str | None = None
    activations: int = 0
    scheduled_at: float | None = None


@dataclass(slots=True)
class SimMeter:
    """A simulated meter: components, last order counter, faults."""

    serial: str
    components: dict[str, SimComponent]
    counter: int = 0
    offline_until: float = 0.0
    fault: str | None = None  # "self-test" | "transfer" | None

    def to_json(self) -> str:
        return json.dumps({
            "counter": self.counter, "offline_until": self.offline_until, "fault": self.fault,
            "components": {k: [c.running, c.staged, c.activations, c.scheduled_at]
                           for k, c in self.components.items()},
        })

    @classmethod
    def from_json(cls, serial: str, text: str) -> SimMeter:
        d = json.loads(text)
        comps = {k: SimComponent(*v) for k, v in d["components"].items()}
        return cls(serial, comps, d["counter"], d["offline_until"], d["fault"])


class SimFleet:
    """The simulated meters, in memory or persisted in a SQLite file (crash-durable)."""

    def __init__(self, path: Path | None = None) -> None:
        self.meters: dict[str, SimMeter] = {}
        self._db: sqlite3.Connection | None = None
        self._dirty: set[str] = set()
        if path is not None:
            self._db = sqlite3.connect(str(path), isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS sim_meters "
                             "(serial TEXT PRIMARY KEY, state TEXT NOT NULL)")
            for serial, text in self._db.execute("SELECT serial, state FROM sim_meters"):
                self.meters[serial] = SimMeter.from_json(serial, text)

    def add(self, serials: Iterable[str], versions: dict[str, str]) -> None:
        """Provision meters with the given running versions."""
        for s in serials:
            self.meters[s] = SimMeter(s, {c: SimComponent(v) for c, v in versions.items()})
            self._dirty.add(s)
        self.commit()

    def touch(self, serial: str) -> SimMeter:
        self._dirty.add(serial)
        return self.meters[serial]

    def commit(self) -> None:
        """Make every change since the last commit durable (one transaction)."""
        if self._db is not None and self._dirty:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO sim_meters (serial, state) VALUES (?, ?)",
                [(s, self.meters[s].to_json()) for s in self._dirty],
            )
            self._db.execute("COMMIT")
        self._dirty.clear()

    def activations(self, component: str) -> dict[str, int]:
        """Activations per meter for ``component`` (the exactly-once evidence)."""
        return {s: m.components[component].activations for s, m in self.meters.items()
                if component in m.components}

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


class SimHeadEnd:
    """An in-process head-end over a :class:`SimFleet` (implements the worker's HeadEnd)."""

    def __init__(self, fleet: SimFleet, *, anchors: Any = None, transfer_loss: float = 0.0,
                 seed: int = 0) -> None:
        self.fleet = fleet
        self.anchors = anchors  # TrustAnchors: when given, orders are verified as a meter does
        self.transfer_loss = transfer_loss
        self.seed = seed
        self._queue: list[Job] = []
        self.jobs_seen = 0

    def submit(self, jobs: Sequence[Job], now: float) -> None:
        self._queue.extend(jobs)

    def poll(self, now: float) -> list[Report]:
        queue, self._queue = self._queue, []
        reports: list[Report] = []
        for job in queue:
            self.jobs_seen += 1
            reports.extend(self._run(job, now))
        self.fleet.commit()  # meter state is durable before the UMS hears of it
        return reports

    # -- one job, the way a head-end session would drive a meter

    def _run(self, job: Job, now: float) -> list[Report]:
        aid, att = job.assignment_id, job.attempt
        meter = self.fleet.meters.get(job.meter)
        if meter is None or now < meter.offline_until:
            return [Report(aid, att, "failed", code="unreachable")]
        comp = meter.components.get(job.component)
        if comp is None:
            return [Report(aid, att, "failed", code="wrong-component")]
        if comp.running == job.target_version:  # read first: never activate twice
            return [Report(aid, att, "running", version=comp.running)]
        out: list[Report] = []
        if job.kind == "deliver":
            if job.order is not None and self.anchors is not None:
                code = self._check_order(job, meter, now)
                if code:
                    return [Report(aid, att, "failed", code=code)]
            if comp.staged != job.target_version:
                out.append(Report(aid, att, "progress", state="transferring"))
                if meter.fault == "transfer" or self._lost(job):
                    return [*out, Report(aid, att, "failed", code="transfer-incomplete")]
                self.fleet.touch(meter.serial)
                comp.staged = job.target_version
                out += [Report(aid, att, "progress", state="transferred"),
                        Report(aid, att, "progress", state="verified")]
            if job.activation == "on-command":
                return [*out, Report(aid, att, "released")]
            if isinstance(job.activation, int) and now < job.activation:
                self.fleet.touch(meter.serial)
                comp.scheduled_at = float(job.activation)
                return [*out, Report(aid, att, "progress", state="scheduled"),
                        Report(aid, att, "released")]
            return out + self._activate(job, meter, comp)
        if comp.staged == job.target_version:  # finish: activate what is staged
            return self._activate(job, meter, comp)
        return [Report(aid, att, "failed", code="transfer-incomplete")]

    def _activate(self, job: Job, meter: SimMeter, comp: SimComponent) -> list[Report]:
        aid, att = job.assignment_id, job.attempt
        self.fleet.touch(meter.serial)
        comp.staged, comp.scheduled_at = None, None
        out = [Report(aid, att, "progress", state="activated")]
        if meter.fault == "self-test":  # the meter reverts by itself and says why
            return [*out, Report(aid, att, "running", version=comp.running,
                                 code="self-test-failed")]
        comp.running = job.target_version
        comp.activations += 1
        return [*out, Report(aid, att, "running", version=comp.running)]

    def _check_order(self, job: Job, meter: SimMeter, now: float) -> str | None:
        from amiup.package.order import verify_order

        assert job.order is not None
        try:
            order = verify_order(job.order, self.anchors, meter_id=meter.serial, now=now,
                                 last_counter=meter.counter,
                                 package_digest=bytes.fromhex(job.package_digest))
        except AmiupError as ex:
            return ex.code
        self.fleet.touch(meter.serial)
        meter.counter = order.counter
        return None

    def _lost(self, job: Job) -> bool:
        if self.transfer_loss <= 0:
            return False
        h = hashlib.blake2b(f"{self.seed}:{job.assignment_id}:{job.attempt}".encode(),
                            digest_size=4).digest()
        return int.from_bytes(h, "big") / 0xFFFFFFFF < self.transfer_loss
