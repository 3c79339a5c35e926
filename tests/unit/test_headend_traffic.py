"""Traffic control (token bucket, delivery windows) and the repair cost rule."""

from __future__ import annotations

import numpy as np
import pytest

from amiup.errors import AmiupError
from amiup.headend.repair import (
    announce_repeats,
    multicast_blocks,
    multicast_mask,
    proactive_repeats,
    repair_by_multicast,
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
def test_repeats_follow_the_same_cost_rule() -> None:
    # 1000 meters at ~3.1 hops, 6-hop cell: at 2% loss ~20 meters miss each block, so a
    # second multicast copy is cheaper than unicast repair; a third is not
    assert proactive_repeats(0.02, 3100, 6) == 2
    assert proactive_repeats(0.0, 3100, 6) == 1
    assert proactive_repeats(0.001, 100, 6) == 1
    # announces: a meter that misses them all costs a unicast payload, so big payloads and
    # big cells get more announces (bounded)
    assert announce_repeats(0.02, 3100, 1.1e6, 7200) == 4
    assert announce_repeats(0.02, 3100, 1.1e5, 7200) == 3
    assert announce_repeats(0.02, 10, 1e3, 7200) == 1
    assert announce_repeats(0.5, 1e6, 1e9, 1.0) == 5
