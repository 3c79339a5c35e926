"""The UMS worker: a loop of tick, claim, hand to the head-end, apply its reports.

A worker holds no state of its own between steps: everything it knows is in the store, and
every step is one or a few short transactions of :class:`~amiup.ums.scheduler.Scheduler`.
So ``kill -9`` at any instant loses nothing (a claim that did not commit never happened; a
claim that did comes back when its lease ends, or at once when the worker restarts under
the same id) and duplicates nothing (reports are conditional transitions; a redelivery reads
the meter first). Several workers may run against PostgreSQL (``FOR UPDATE SKIP LOCKED``).

Head-ends plug in through the small :class:`HeadEnd` interface: ``submit`` takes jobs,
``poll`` returns reports. The embedded default runs one in-process (``amiup.fleet``); with
separate head-end processes the worker passes ``headend=None`` and only ticks, while the
head-ends claim and report through the head-end HTTP API (:mod:`amiup.ums.headend_api`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from amiup.ums.scheduler import Job, OrderSigner, Report, Scheduler
from amiup.ums.store import Store


class HeadEnd(Protocol):
    """What a worker needs of a head-end: take jobs, give back what happened."""

    def submit(self, jobs: Sequence[Job], now: float) -> None:
        """Start (or resume) the given jobs; returns at once or after doing them."""

    def poll(self, now: float) -> list[Report]:
        """Reports gathered since the last poll (progress, read-backs, failures)."""


@dataclass(slots=True)
class StepStats:
    """What one step did."""

    claimed: int = 0
    reports: int = 0
    transitions: int = 0
    ticked: bool = False
    completed: list[int] = field(default_factory=list)
    halted: list[int] = field(default_factory=list)

    @property
    def idle(self) -> bool:
        return not (self.claimed or self.reports or self.transitions)


class Worker:
    """One worker process's loop around a :class:`Scheduler` and an optional head-end."""

    def __init__(self, store: Store, headend: HeadEnd | None, *, worker_id: str,
                 signer: OrderSigner | None = None, batch: int = 500, lease_s: float = 300.0,
                 tick_interval_s: float = 1.0) -> None:
        self.store = store
        self.headend = headend
        self.scheduler = Scheduler(claimer=f"worker:{worker_id}", signer=signer, lease_s=lease_s)
        self.batch = batch
        self.tick_interval_s = tick_interval_s  # gates and timers need no more than this
        self._last_tick: float | None = None
        self._was_idle = True

    def recover(self, now: float) -> int:
        """Take back at once what this worker id held before a crash."""
        with self.store.session() as s:
            return self.scheduler.recover(s, now=now)

    def step(self, now: float) -> StepStats:
        """One round: tick (at most every ``tick_interval_s``), claim and submit, poll, apply."""
        out = StepStats()
        due = self._last_tick is None or now - self._last_tick >= self.tick_interval_s
        if due or self._was_idle:  # nothing to do last time: maybe a gate can open now
            with self.store.session() as s:
                t = self.scheduler.tick(s, now=now)
            self._last_tick = now
            out.ticked = True
            out.completed, out.halted = t.completed, t.halted
            out.transitions += t.expired + t.lease_lost
        if self.headend is None:
            self._was_idle = True
            return out
        with self.store.session() as s:
            jobs = self.scheduler.claim(s, now=now, limit=self.batch)
        out.claimed = len(jobs)
        out.transitions += len([j for j in jobs if j.kind == "deliver"])
        if jobs:
            self.headend.submit(jobs, now)
        reports = self.headend.poll(now)
        out.reports = len(reports)
        for i in range(0, len(reports), self.batch * 4):
            with self.store.session() as s:
                res = self.scheduler.apply(s, reports[i : i + self.batch * 4], now=now)
            out.transitions += res.count
        self._was_idle = out.idle
        return out

    def run(self, *, clock: Callable[[], float] = time.time, idle_sleep: float = 0.5,
            stop: Callable[[], bool] = lambda: False, max_steps: int | None = None) -> int:
        """Loop until ``stop()`` (or ``max_steps``); sleeps only when there was nothing to do."""
        self.recover(clock())
        steps = 0
        while not stop() and (max_steps is None or steps < max_steps):
            stats = self.step(clock())
            steps += 1
            if stats.idle and not stats.ticked:
                time.sleep(idle_sleep)
        return steps


def run_until_done(worker: Worker, campaign_ids: Sequence[int], *, now: float,
                   dt: float = 1.0, max_steps: int = 100_000) -> float:
    """Drive ``worker`` on simulated time until no campaign of these runs; returns the time."""
    from sqlalchemy import select

    from amiup.ums import states as st
    from amiup.ums.models import Campaign

    for _ in range(max_steps):
        worker.step(now)
        with worker.store.session() as s:
            left = s.execute(
                select(Campaign.id).where(Campaign.id.in_(list(campaign_ids)),
                                          Campaign.state == st.RUNNING)
            ).all()
        if not left:
            return now
        now += dt
    return now
