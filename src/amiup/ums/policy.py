"""Campaign policies as pure decisions: retry with backoff, wave gate and halt, activation.

Each policy is a frozen dataclass that serializes to a plain dict (stored with the campaign)
and answers one question given numbers and a time passed in. The scheduler asks; it never
decides on its own, so every rule here is unit-tested without a database.

* :class:`RetryPolicy`: after a failure with error code C on attempt n, retry at t or give up.
  Only codes that a later attempt can fix are retryable (an unreachable meter may come back;
  a bad signature will not). Backoff is exponential with a deterministic per-assignment
  jitter, so a cell that went dark does not come back all at once.
* :class:`GatePolicy`: a wave halts the campaign by itself as soon as its failures pass the
  threshold (UMS-7), and the next wave opens only when the success gate is met.
* :class:`Activation`: activate as soon as verified, at a time, or on a later command (UMS-4,
  SM-5).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Literal

from amiup.errors import error

# Codes a later attempt can cure: the meter or the path was away or busy, or the transfer broke.
DEFAULT_RETRYABLE: frozenset[str] = frozenset(
    {"timeout", "unreachable", "transfer-incomplete", "busy", "no-contact"}
)


@dataclass(frozen=True, slots=True)
class Retry:
    """Decision: try again not before ``at`` (unix seconds)."""

    at: float


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Decision: the failure is final; ``reason`` says why it is not retried."""

    reason: str


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how soon a failed delivery is tried again, by error code."""

    max_attempts: int = 5
    backoff_s: float = 60.0
    factor: float = 2.0
    max_backoff_s: float = 3600.0
    jitter: float = 0.2  # +- fraction of the delay, deterministic per assignment
    retryable: frozenset[str] = DEFAULT_RETRYABLE

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.backoff_s < 0 or self.factor < 1:
            raise error("invalid-argument", "retry: max_attempts >= 1, backoff >= 0, factor >= 1")
        if not 0 <= self.jitter < 1 or self.max_backoff_s < self.backoff_s:
            raise error("invalid-argument", "retry: 0 <= jitter < 1 and max_backoff >= backoff")

    def delay(self, attempt: int, key: int = 0) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        base = min(self.max_backoff_s, self.backoff_s * self.factor ** max(0, attempt - 1))
        if not self.jitter:
            return base
        h = hashlib.blake2b(f"{key}:{attempt}".encode(), digest_size=4).digest()
        unit = int.from_bytes(h, "big") / 0xFFFFFFFF  # 0..1
        return base * (1 - self.jitter + 2 * self.jitter * unit)

    def decide(self, *, attempt: int, code: str, now: float, key: int = 0) -> Retry | GiveUp:
        """After attempt ``attempt`` failed with ``code`` at ``now``: retry or give up."""
        if code not in self.retryable:
            return GiveUp(f"{code} is not retryable")
        if attempt >= self.max_attempts:
            return GiveUp(f"{code} after {attempt} attempts")
        return Retry(now + self.delay(attempt, key))

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["retryable"] = sorted(self.retryable)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, object] | None) -> RetryPolicy:
        data = dict(data or {})
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise error("invalid-argument", f"retry: unknown fields {sorted(unknown)}")
        if "retryable" in data:
            codes = data["retryable"]
            assert isinstance(codes, list | tuple | set | frozenset)
            data["retryable"] = frozenset(str(c) for c in codes)
        return cls(**data)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class WaveCounts:
    """Where the assignments of one wave are: the inputs of the gate."""

    total: int
    confirmed: int = 0
    failed: int = 0  # final failures (not those waiting for a retry)
    expired: int = 0
    cancelled: int = 0

    @property
    def counted(self) -> int:
        """Assignments that count toward rates (cancelled ones were withdrawn, not tried)."""
        return self.total - self.cancelled

    @property
    def finished(self) -> int:
        return self.confirmed + self.failed + self.expired + self.cancelled

    @property
    def bad(self) -> int:
        return self.failed + self.expired


GateDecision = Literal["advance", "wait", "halt"]


@dataclass(frozen=True, slots=True)
class GatePolicy:
    """Success gate to open the next wave, failure threshold that halts the campaign.

    ``max_failure_rate`` is compared against the whole wave (failed + expired over counted),
    so it can halt while the wave still runs: once the threshold is passed, no later success
    can bring the rate back under it. ``min_success_rate`` is checked when every assignment
    of the wave is final; a finished wave under the gate halts too (someone must look).
    """

    min_success_rate: float = 0.95
    max_failure_rate: float = 0.05

    def __post_init__(self) -> None:
        if not (0 <= self.min_success_rate <= 1 and 0 <= self.max_failure_rate <= 1):
            raise error("invalid-argument", "gate rates must be between 0 and 1")

    def decide(self, c: WaveCounts) -> tuple[GateDecision, str]:
        """``advance`` / ``wait`` / ``halt`` for one wave, with the reason in words."""
        n = c.counted
        if n <= 0:
            return ("advance", "wave is empty") if c.finished == c.total else ("wait", "")
        fail_rate = c.bad / n
        if fail_rate > self.max_failure_rate:
            return "halt", (
                f"failure rate {fail_rate:.1%} ({c.bad}/{n}) above {self.max_failure_rate:.1%}"
            )
        if c.finished < c.total:
            return "wait", f"{c.total - c.finished} assignments still active"
        ok_rate = c.confirmed / n
        if ok_rate < self.min_success_rate:
            return "halt", f"success rate {ok_rate:.1%} below gate {self.min_success_rate:.1%}"
        return "advance", f"success rate {ok_rate:.1%}"

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object] | None) -> GatePolicy:
        return cls(**dict(data or {}))  # type: ignore[arg-type]


ActivationKind = Literal["now", "at", "on-command"]


@dataclass(frozen=True, slots=True)
class Activation:
    """When a verified image is activated: at once, at a time, or on a later command."""

    kind: ActivationKind = "now"
    at: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("now", "at", "on-command"):
            raise error("invalid-argument", f"activation: now, at or on-command, not {self.kind!r}")
        if (self.kind == "at") != (self.at is not None):
            raise error("invalid-argument", "activation 'at' needs a time, and only it")

    def due(self, now: float, commanded: bool) -> bool:
        """May a verified, staged image be activated at ``now``?"""
        if self.kind == "now":
            return True
        if self.kind == "at":
            assert self.at is not None
            return now >= self.at or commanded
        return commanded

    def order_value(self) -> str | int:
        """The activation field of a signed upgrade order (``now``/``on-command``/unix s)."""
        if self.kind == "at":
            assert self.at is not None
            return int(self.at)
        return self.kind

    def to_dict(self) -> dict[str, object]:
        """The campaign's ``activation`` JSON: ``{"mode": ..., "at": ...}``."""
        return {"mode": self.kind, "at": self.at}

    @classmethod
    def from_dict(cls, data: dict[str, object] | None) -> Activation:
        data = data or {}
        at = data.get("at")
        kind = str(data.get("mode") or data.get("kind") or "now")
        return cls(kind, float(at) if isinstance(at, int | float) else None)  # type: ignore[arg-type]


def expired(deadline: float | None, now: float) -> bool:
    """Has an assignment outlived its deadline (it becomes ``expired``, never stuck)?"""
    return deadline is not None and now >= deadline
