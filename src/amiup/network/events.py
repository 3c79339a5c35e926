"""Discrete-event core: one heap of (time, priority, sequence, action) in virtual time.

As in SimPy: ``schedule``, ``step``, ``run(until)``, ``peek``; the sequence number makes runs
deterministic (ties break by insertion order). The loop never reads the wall clock.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

from amiup.errors import error

Action = Callable[[], None]


class EventLoop:
    """Virtual clock and event heap; actions are plain callables that may schedule more."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self._heap: list[tuple[float, int, int, Action]] = []
        self._seq = 0
        self.steps = 0

    def schedule(self, delay: float, action: Action, priority: int = 1) -> None:
        """Run ``action`` ``delay`` seconds from now (lower ``priority`` first at equal times)."""
        if delay < 0:
            raise error("invalid-argument", f"negative delay {delay}")
        self.at(self.now + delay, action, priority)

    def at(self, time: float, action: Action, priority: int = 1) -> None:
        """Run ``action`` at virtual ``time`` (not before now)."""
        self._seq += 1
        heapq.heappush(self._heap, (max(time, self.now), priority, self._seq, action))

    def peek(self) -> float | None:
        """Time of the next event, or None when idle."""
        return self._heap[0][0] if self._heap else None

    def step(self) -> None:
        """Run the next event."""
        time, _, _, action = heapq.heappop(self._heap)
        self.now = time
        self.steps += 1
        action()

    def run(self, until: float | None = None, *, max_steps: int = 10_000_000) -> None:
        """Run events up to virtual time ``until`` (or until idle); bounded by ``max_steps``."""
        for _ in range(max_steps):
            nxt = self.peek()
            if nxt is None or (until is not None and nxt > until):
                break
            self.step()
        else:
            raise error("timeout", f"simulation did not settle in {max_steps} steps")
        if until is not None and until > self.now:
            self.now = until
