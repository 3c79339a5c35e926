"""Traffic control (token bucket, delivery windows) and the repair cost rule."""

from __future__ import annotations

import numpy as np
import pytest

from amiup.errors import AmiupError
from amiup.headend.repair import (
    announce_repeats,
    coded_repeats,
    coded_round,
    multicast_blocks,
    multicast_mask,
    repair_by_multicast,
    short_probability,
)
from amiup.headend.traffic import DeliveryWindows, TokenBucket, cell_budget
from reqmark import req


@req("AMI-3")
def test_token_bucket_holds_the_long_run_rate() -> None:
    bucket = TokenBucket(rate=100.0, burst=200.0)
    now, sent = 0.0, 0.0
    while now < 1000.0:
        wait = bucket.delay(50.0, now)
        if wait:
            now += wait
            continue
        bucket.spend(50.0, now)
        sent += 50.0
    assert sent <= 100.0 * 1000.0 + 200.0 + 50.0  # rate x time + burst
    assert sent >= 100.0 * 1000.0 * 0.99


@req("AMI-3")
def test_cell_budget_is_a_share_of_usable_capacity() -> None:
    b = cell_budget(112_500.0, 0.2)
    assert b.rate == pytest.approx(112_500 / 8 * 0.2)
    with pytest.raises(AmiupError):
        cell_budget(112_500.0, 1.5)


@req("AMI-3", "UMS-4")
def test_delivery_windows_open_and_wrap_midnight() -> None:
    w = DeliveryWindows(((22 * 3600.0, 5 * 3600.0),))
    day = 86400.0 * 10
    assert not w.is_open(day + 12 * 3600)
    assert w.is_open(day + 23 * 3600) and w.is_open(day + 2 * 3600)
    assert w.next_open(day + 12 * 3600) == pytest.approx(day + 22 * 3600)
    assert DeliveryWindows().is_open(day)
    with pytest.raises(AmiupError):
        DeliveryWindows(((3600.0, 3600.0),))


@req("AMI-4")
def test_cost_rule_multicasts_only_where_many_miss() -> None:
    hops = np.array([1, 2, 6, 3])
    missing = np.array([
        [1, 0, 1, 0],
        [1, 0, 0, 0],
        [1, 1, 0, 0],
        [1, 0, 0, 0],
    ], dtype=bool)  # block 0: all four (12 hops); block 1: one deep meter (6); block 2: one (1)
    mc = multicast_mask(missing, hops, cell_hops=6)
    assert mc.tolist() == [True, False, False, False]
    assert repair_by_multicast([6, 3], 6) and not repair_by_multicast([6], 6)
    rows, cols = np.nonzero(missing)
    assert multicast_blocks(cols, hops[rows], 4, 6).tolist() == mc.tolist()


@req("AMI-4")
def test_announces_make_a_late_joiner_rare() -> None:
    # a meter that misses every offer needs the whole payload by unicast: announce until
    # fewer than one meter in a thousand cells is expected to
    assert announce_repeats(0.02, 1000) == 4
    assert announce_repeats(0.002, 1000) == 3
    assert announce_repeats(0.05, 300) == 5
    assert announce_repeats(0.3, 1000) == 5  # bounded
    assert announce_repeats(0.02, 1) == 2
    assert announce_repeats(0.0, 1000) == 1


def test_short_probability_is_the_binomial_tail() -> None:
    # P(Bin(4, 0.5) > 1) = 11/16; exact small cases and the edges
    assert short_probability(0.5, 3, 1) == pytest.approx(11 / 16)
    assert short_probability(0.0, 100, 0) == 0.0
    assert short_probability(0.1, 0, 0) == 0.0
    rng = np.random.default_rng(3)
    draws = rng.binomial(110, 0.02, size=400_000)
    assert short_probability(0.02, 103, 7) == pytest.approx(float((draws > 7).mean()), rel=0.1)


@req("AMI-4")
def test_coded_repeats_buy_a_margin_against_a_round() -> None:
    # 103 blocks, 1000 meters at 2%: about loss x K symbols (2) plus a margin, far below the
    # 103 a second copy of every block would cost
    r = coded_repeats(0.02, 103, 1000, symbol_air=6636, round_air=20000, answer_air=300)
    assert 3 <= r <= 12
    assert coded_repeats(0.0, 103, 1000, 6636, 20000, 300) == 0
    # a costlier round or a bigger cell buys a larger margin; never below the mean loss
    assert coded_repeats(0.02, 103, 1000, 6636, 2e6, 300) > r
    assert coded_repeats(0.02, 103, 1, 6636, 20000, 300) <= r
    assert coded_repeats(0.3, 103, 24, 6636, 20000, 300) >= 45  # 0.3 x 103 / 0.7 = 44.1


@req("AMI-4")
def test_coded_round_multicasts_for_many_and_unicasts_for_few() -> None:
    # thirty meters short of one symbol each: one multicast symbol (plus margin) serves all
    c, uni = coded_round(np.ones(30, dtype=np.int64), np.full(30, 3), 6, 0.02, 3.0, 0.1)
    assert 1 <= c <= 4 and not uni.any()
    # one shallow meter short of two: unicast is cheaper than a cell-wide multicast
    c, uni = coded_round(np.array([2]), np.array([1]), 6, 0.02, 3.0, 0.1)
    assert c == 0 and uni.tolist() == [True]
    # a deep outlier needing many: the many get the multicast, the outlier unicast
    needs = np.array([1] * 20 + [40])
    c, uni = coded_round(needs, np.array([2] * 20 + [1]), 6, 0.02, 3.0, 0.1)
    assert c < 40 and uni.tolist() == [False] * 20 + [True]
    assert coded_round(np.zeros(3, dtype=np.int64), np.ones(3), 6, 0.02, 3.0, 0.1)[0] == 0
