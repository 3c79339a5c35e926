"""Retry policy, wave gate and failure threshold, activation policy: pure decisions."""

from __future__ import annotations

import pytest

from amiup.errors import AmiupError
from amiup.ums.policy import Activation, GatePolicy, GiveUp, Retry, RetryPolicy, WaveCounts
from reqmark import req


@req("UMS-6", "UMS-9")
def test_retryable_code_backs_off_exponentially_then_gives_up() -> None:
    p = RetryPolicy(max_attempts=4, backoff_s=60, factor=2, max_backoff_s=1000, jitter=0)
    assert p.decide(attempt=1, code="unreachable", now=0) == Retry(60)
    assert p.decide(attempt=2, code="unreachable", now=0) == Retry(120)
    assert p.decide(attempt=3, code="timeout", now=10) == Retry(250)
    assert isinstance(p.decide(attempt=4, code="unreachable", now=0), GiveUp)
    assert RetryPolicy(backoff_s=600, max_backoff_s=700, jitter=0).delay(5) == 700


@req("UMS-6")
def test_codes_a_retry_cannot_cure_are_final_at_once() -> None:
    p = RetryPolicy()
    for code in ("bad-signature", "wrong-model", "rollback-refused", "self-test-failed"):
        d = p.decide(attempt=1, code=code, now=0)
        assert isinstance(d, GiveUp) and code in d.reason
    custom = RetryPolicy(retryable=frozenset({"self-test-failed"}))
    assert isinstance(custom.decide(attempt=1, code="self-test-failed", now=0), Retry)


def test_jitter_is_deterministic_bounded_and_spreads_meters() -> None:
    p = RetryPolicy(backoff_s=100, jitter=0.2)
    delays = [p.delay(1, key=k) for k in range(200)]
    assert all(80 <= d <= 120 for d in delays)
    assert len({round(d, 3) for d in delays}) > 150
    assert p.delay(1, key=7) == p.delay(1, key=7)


def test_retry_policy_round_trips_and_refuses_nonsense() -> None:
    p = RetryPolicy(max_attempts=2, retryable=frozenset({"busy"}))
    assert RetryPolicy.from_dict(p.to_dict()) == p
    with pytest.raises(AmiupError):
        RetryPolicy.from_dict({"max_attempts": 0})
    with pytest.raises(AmiupError):
        RetryPolicy.from_dict({"bogus": 1})


@req("UMS-7")
def test_gate_halts_as_soon_as_failures_pass_the_threshold() -> None:
    g = GatePolicy(min_success_rate=0.9, max_failure_rate=0.1)
    # 100 meters, 11 failed while 50 still run: no success can undo it
    assert g.decide(WaveCounts(total=100, confirmed=39, failed=11))[0] == "halt"
    assert g.decide(WaveCounts(total=100, confirmed=39, failed=6, expired=5))[0] == "halt"
    assert g.decide(WaveCounts(total=100, confirmed=39, failed=10))[0] == "wait"


@req("UMS-7")
def test_gate_advances_only_when_the_wave_is_done_and_successful() -> None:
    g = GatePolicy(min_success_rate=0.9, max_failure_rate=0.1)
    assert g.decide(WaveCounts(total=100, confirmed=95))[0] == "wait"
    assert g.decide(WaveCounts(total=100, confirmed=95, failed=5))[0] == "advance"
    # cancelled assignments do not count either way
    assert g.decide(WaveCounts(total=100, confirmed=90, cancelled=10))[0] == "advance"
    decision, why = GatePolicy(0.99, 0.5).decide(WaveCounts(total=100, confirmed=95, failed=5))
    assert decision == "halt" and "below gate" in why


@req("UMS-4", "SM-5")
def test_activation_now_at_a_time_or_on_command() -> None:
    assert Activation().due(0, commanded=False)
    at = Activation("at", 1000.0)
    assert not at.due(999, commanded=False) and at.due(1000, commanded=False)
    assert at.due(10, commanded=True)  # the command may bring it forward
    assert at.order_value() == 1000
    cmd = Activation("on-command")
    assert not cmd.due(1e12, commanded=False) and cmd.due(0, commanded=True)
    assert Activation.from_dict(cmd.to_dict()) == cmd
    with pytest.raises(AmiupError):
        Activation("at")
    with pytest.raises(AmiupError):
        Activation("later")  # type: ignore[arg-type]
