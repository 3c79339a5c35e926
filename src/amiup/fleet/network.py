"""An in-process head-end that delivers over the simulated AMI network to real meters.

Each delivery job of the UMS becomes one run of the delivery part: a ``UnicastSession``
(offer, windowed blocks, repair, verify, activate, read back) carried frame by frame as real
wire encodings over ``SimNetwork`` (loss, hops, airtime of the chosen profile) to a
``MeterEndpoint`` around a real ``amiup.meter.Meter``. The order in the session is the one
the UMS signed for that meter. When the run ends, the head-end reports what the meter's own
status says is running (UMS-8), or the session's failure code.

Simplification: jobs run one after another on the meter's own simulated clock (each meter
keeps its time; a run never goes back in time), not concurrently on one shared channel;
cell contention is what ``amiup.headend.simrun`` and the fleet model measure.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from amiup.errors import AmiupError
from amiup.ums.scheduler import Job, Report


class NetworkHeadEnd:
    """Implements the worker's ``HeadEnd`` over the network simulator and real meters."""

    def __init__(self, meters: dict[str, Any], packages: dict[str, bytes], *,
                 profile: str = "rf-mesh", cells: dict[str, str] | None = None,
                 hops: int = 2, loss: float | None = None, block_size: int = 256,
                 horizon_s: float = 6 * 3600.0, seed: int = 1) -> None:
        from amiup.network.endpoint import MeterEndpoint

        self.endpoints = {s: MeterEndpoint(m) for s, m in meters.items()}
        self.packages = packages
        self.profile, self.cells, self.hops = profile, cells or {}, hops
        self.loss, self.block_size, self.horizon_s, self.seed = loss, block_size, horizon_s, seed
        self.clock: dict[str, float] = {}  # each meter's simulated time so far
        self._queue: list[Job] = []
        self.airtime_s = 0.0

    def submit(self, jobs: Sequence[Job], now: float) -> None:
        self._queue.extend(jobs)

    def poll(self, now: float) -> list[Report]:
        queue, self._queue = self._queue, []
        out: list[Report] = []
        for job in queue:
            try:
                out.extend(self._run(job, now))
            except AmiupError as ex:
                out.append(Report(job.assignment_id, job.attempt, "failed", code=ex.code))
        return out

    def _running(self, job: Job, t: float) -> Report:
        meter = self.endpoints[job.meter].meter
        nonce = hashlib.sha256(f"{job.assignment_id}:{t}".encode()).digest()[:16]
        cs = meter.status(nonce, t).components[job.component]
        code = None if cs.running_version == job.target_version else (cs.code or
                                                                         "version-mismatch")
        return Report(job.assignment_id, job.attempt, "running", version=cs.running_version,
                      code=code)

    def _run(self, job: Job, now: float) -> list[Report]:
        from amiup.headend.session import Delivery
        from amiup.headend.simrun import RunConfig, SimDelivery, SimMeter
        from amiup.network.events import EventLoop
        from amiup.network.profiles import PROFILES
        from amiup.network.sim import Impairments, SimNetwork
        from amiup.package.verify import decode_package

        aid, att = job.assignment_id, job.attempt
        ep = self.endpoints.get(job.meter)
        if ep is None:
            return [Report(aid, att, "failed", code="unreachable")]
        t0 = max(now, self.clock.get(job.meter, now))
        first = self._running(job, t0)
        if first.version == job.target_version:  # read first: never activate twice
            return [first]
        if job.kind == "finish" or job.order is None or job.activation != "now":
            # staged-image activation and scheduled activations: the direct path does it
            from amiup.fleet.meters import MeterHeadEnd

            direct = MeterHeadEnd({job.meter: ep.meter}, self.packages)
            direct.submit([job], t0)
            return direct.poll(t0)
        pkg = decode_package(self.packages[job.package_digest])
        delivery = Delivery(job.order, pkg.signed_header, pkg.payload, job.component,
                            job.target_version, self.block_size, None)
        loop = EventLoop(t0)
        imp = Impairments(loss=self.loss) if self.loss is not None else None
        net = SimNetwork(loop, PROFILES[self.profile], imp, seed=self.seed + aid * 7 + att)
        placed = [SimMeter(ep, self.cells.get(job.meter, "c0"), self.hops)]
        run = SimDelivery(loop, net, placed, delivery, RunConfig(max_attempts=1))
        run.start()
        # Run in slices and stop once the meter's outcome is known: the meter's periodic
        # ticks would otherwise carry the clock on to the horizon.
        outcome = run.outcomes[job.meter]
        t = t0
        while t < t0 + self.horizon_s and outcome.confirmed_at is None and outcome.code is None:
            t = min(t + 60.0, t0 + self.horizon_s)
            run.run(until=t)
        end = max(loop.now, t0)
        self.clock[job.meter] = end
        reports = [Report(aid, att, "progress", state="transferring")]
        if outcome.confirmed_at is None:
            return [*reports, Report(aid, att, "failed", code=outcome.code or "timeout")]
        reports += [Report(aid, att, "progress", state=s)
                    for s in ("transferred", "verified", "activated")]
        return [*reports, self._running(job, end)]
