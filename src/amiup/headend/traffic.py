"""Traffic control (AMI-3): a per-cell airtime budget for upgrade traffic, and delivery windows.

Upgrade frames pass a token bucket that refills at ``share`` of the cell's usable capacity
(airtime measured in bytes x hops, as the network counts it); the meters' replies are charged
when they arrive, so upgrades take at most that share over any period longer than
``burst / rate``; the network then serves reads and alarms
before upgrade frames (priority). Delivery windows say when upgrade traffic may flow at all.
Pure arithmetic on times passed in: no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from amiup.errors import error

DAY = 86400.0


@dataclass
class TokenBucket:
    """Airtime budget: ``rate`` bytes-on-air per second, up to ``burst`` saved up."""

    rate: float
    burst: float
    tokens: float = field(default=-1.0)
    stamp: float = 0.0

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst <= 0:
            raise error("invalid-argument", "token bucket rate and burst must be positive")
        if self.tokens < 0:
            self.tokens = self.burst

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def delay(self, cost: float, now: float) -> float:
        """Seconds to wait before ``cost`` may be spent (0 if it may go now)."""
        self._refill(now)
        need = min(cost, self.burst) - self.tokens
        if need <= 1e-6 * self.burst:  # enough (up to rounding): go now
            return 0.0
        return max(need / self.rate, 1e-6)

    def spend(self, cost: float, now: float) -> None:
        """Take ``cost`` tokens (may go negative for a frame larger than the burst)."""
        self._refill(now)
        self.tokens -= cost


def cell_budget(c_eff_bps: float, share: float, burst_s: float = 2.0) -> TokenBucket:
    """Bucket letting upgrades use ``share`` of a cell of ``c_eff_bps`` usable bits/s."""
    if not 0.0 < share <= 1.0:
        raise error("invalid-argument", f"upgrade share {share} not in (0, 1]")
    rate = c_eff_bps / 8.0 * share
    return TokenBucket(rate=rate, burst=rate * burst_s)


@dataclass(frozen=True, slots=True)
class DeliveryWindows:
    """Daily windows ``[(start_s, end_s), ...]`` in seconds after midnight (UTC of the sim).

    An empty tuple means "always open". A window may wrap midnight (start > end).
    """

    windows: tuple[tuple[float, float], ...] = ()

    def __post_init__(self) -> None:
        for start, end in self.windows:
            if not (0 <= start < DAY and 0 <= end <= DAY) or start == end:
                raise error("invalid-argument", f"bad delivery window {start}-{end}")

    def is_open(self, now: float) -> bool:
        if not self.windows:
            return True
        t = now % DAY
        return any((s <= t < e) if s < e else (t >= s or t < e) for s, e in self.windows)

    def next_open(self, now: float) -> float:
        """``now`` if open, else the time the next window opens."""
        if self.is_open(now):
            return now
        t = now % DAY
        waits = [(s - t) % DAY for s, _ in self.windows]
        return now + min(waits)
