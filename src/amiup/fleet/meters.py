"""An in-process head-end driving real reference meters (``amiup.meter.Meter``) directly.

Where :mod:`amiup.fleet.sim` is a fast stand-in, this one runs the real thing without a
network: the meter verifies the utility's order (signature, window, target, counter) and
the vendor's manifest, receives every block, verifies the image, activates it, runs its
trial, and commits or reverts by itself; the head-end reads the running version back from
the meter's signed status report. So a campaign confirmed through it is evidence that the
UMS confirms only what a real meter reports running (UMS-8), and that a bad image reverts
and fails the assignment with the meter's own reason.

Activations take the meter's trial window of (simulated) time: a job waits across polls
until the meter has committed or reverted, then the read-back is reported.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

from amiup.errors import AmiupError
from amiup.ums.scheduler import Job, Report

_WAITING_STATES = ("activating", "trial", "scheduled")


class MeterHeadEnd:
    """Implements the worker's ``HeadEnd`` over real ``Meter`` objects (no network)."""

    def __init__(self, meters: dict[str, Any], packages: dict[str, bytes], *,
                 block_size: int = 1024) -> None:
        self.meters = meters
        self.packages = packages  # manifest digest (hex) -> package file bytes
        self.block_size = block_size
        self._queue: list[Job] = []
        self._waiting: dict[int, Job] = {}

    def submit(self, jobs: Sequence[Job], now: float) -> None:
        self._queue.extend(jobs)

    def poll(self, now: float) -> list[Report]:
        out: list[Report] = []
        for aid, job in list(self._waiting.items()):
            rep = self._readback(job, now)
            if rep is not None:
                out.append(rep)
                del self._waiting[aid]
        queue, self._queue = self._queue, []
        for job in queue:
            try:
                out.extend(self._run(job, now))
            except AmiupError as ex:  # every refusal of the meter, with its stable code
                out.append(Report(job.assignment_id, job.attempt, "failed", code=ex.code))
        return out

    def _status(self, job: Job, now: float) -> Any:
        meter = self.meters[job.meter]
        nonce = hashlib.sha256(f"{job.assignment_id}:{now}".encode()).digest()[:16]
        return meter.status(nonce, now).components[job.component]

    def _readback(self, job: Job, now: float) -> Report | None:
        meter = self.meters[job.meter]
        meter.tick(now)
        if job.component == "ami_comm":
            meter.contact(now)  # the head-end hears it: an ami_comm trial can commit
        cs = self._status(job, now)
        if cs.state in _WAITING_STATES:
            return None
        if cs.running_version == job.target_version:
            return Report(job.assignment_id, job.attempt, "running", version=cs.running_version)
        return Report(job.assignment_id, job.attempt, "running", version=cs.running_version,
                      code=cs.code or "version-mismatch")

    def _wait(self, job: Job, now: float) -> list[Report]:
        self._waiting[job.assignment_id] = job
        rep = self._readback(job, now)
        if rep is not None:
            del self._waiting[job.assignment_id]
            return [rep]
        return []

    def _run(self, job: Job, now: float) -> list[Report]:
        aid, att = job.assignment_id, job.attempt
        meter = self.meters.get(job.meter)
        if meter is None or not meter.reachable:
            return [Report(aid, att, "failed", code="unreachable")]
        cs = self._status(job, now)
        if cs.running_version == job.target_version:  # read first: never activate twice
            return [Report(aid, att, "running", version=cs.running_version)]
        if job.kind == "finish":
            if cs.state in _WAITING_STATES and cs.state != "scheduled":
                return self._wait(job, now)
            if cs.staged_version == job.target_version:
                meter.activate(job.component, None, now)
                return [Report(aid, att, "progress", state="activated"), *self._wait(job, now)]
            return [Report(aid, att, "failed", code="transfer-incomplete")]
        from amiup.package.verify import decode_package

        if job.order is None:
            return [Report(aid, att, "failed", code="not-authorized")]
        pkg = decode_package(self.packages[job.package_digest])
        acc = meter.offer(job.order, pkg.signed_header, now, block_size=self.block_size)
        out = [Report(aid, att, "progress", state="transferring")]
        bs = acc.block_size
        for i in range(acc.n_blocks):
            if acc.missing[i // 8] >> (i % 8) & 1:
                meter.block(acc.transfer_id, i, pkg.payload[i * bs : (i + 1) * bs], now)
        out.append(Report(aid, att, "progress", state="transferred"))
        state = meter.verify(job.component, now)
        out.append(Report(aid, att, "progress", state="verified"))
        if state == "verified":  # on-command: staged until the operator says so
            return [*out, Report(aid, att, "released")]
        if state == "scheduled":
            return [*out, Report(aid, att, "progress", state="scheduled"),
                    Report(aid, att, "released")]
        return [*out, Report(aid, att, "progress", state="activated"), *self._wait(job, now)]


def real_meters(serials: Iterable[str], anchors: Any, *, vendor: str = "acme",
                model: str = "M1", hw_rev: str = "A", trial_window: float = 5.0,
                versions: dict[str, str] | None = None, now: float = 0.0) -> dict[str, Any]:
    """Provisioned, booted reference meters in memory, keyed by serial."""
    from amiup.meter import MemoryStorage, Meter, MeterConfig, provision

    out: dict[str, Any] = {}
    for s in serials:
        storage = MemoryStorage()
        provision(storage, serial=s, vendor=vendor, model=model, hw_rev=hw_rev,
                  anchors=anchors, versions=versions or {}, image_size=256, now=now)
        m = Meter(storage, MeterConfig(trial_window=trial_window))
        m.boot(now)
        out[s] = m
    return out
