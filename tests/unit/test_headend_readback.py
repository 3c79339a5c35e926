"""Read-back planning: per-depth waits of a gathered read-back, and what gathering saves."""

from __future__ import annotations

import numpy as np

from amiup.headend.fleetmodel import FleetConfig, simulate
from amiup.headend.readback import gather_waits, level_airtime
from amiup.network.profiles import PROFILES
from amiup.network.sizes import MessageSizes
from reqmark import req

RF = PROFILES["rf-mesh"]
SIZES = MessageSizes.for_transfer(RF, 103)


def test_each_level_carries_the_answers_of_everything_below_it() -> None:
    hops = [1, 2, 2, 3]
    air = level_airtime(hops, 100, 10)
    assert air[3] == 100  # one frame, its own answer
    assert air[2] == 2 * 100 + 1 * 10  # two frames, plus the depth-3 answer
    assert air[1] == 100 + 3 * 10  # one frame carrying everything below


@req("UMS-8")
def test_deeper_levels_send_first_and_waits_cover_the_airtime_below() -> None:
    hops = np.random.default_rng(1).choice(np.arange(1, 7), size=1000, p=[.15, .25, .25, .17, .11, .07])
    s_per_byte = 8.0 / RF.c_eff_bps
    waits = gather_waits(hops, SIZES.gather_frame, SIZES.gather_per_meter, s_per_byte, RF.hop_latency_s)
    assert len(waits) == 6 and waits[-1] == 0
    assert list(waits) == sorted(waits, reverse=True)  # depth 1 waits longest
    air = level_airtime(hops, SIZES.gather_frame, SIZES.gather_per_meter)
    below_1 = sum(a for d, a in air.items() if d > 1) * s_per_byte
    assert waits[0] / 1000 >= below_1
    assert gather_waits([], 100, 10, s_per_byte, 0.03) == ()


@req("AMI-4", "UMS-8")
def test_gathering_the_read_back_saves_most_of_its_airtime() -> None:
    base = dict(meters=2000, profile=RF, delta=True, loss=0.0)
    gathered = simulate(FleetConfig(**base))  # type: ignore[arg-type]
    direct = simulate(FleetConfig(**base, gather=False))  # type: ignore[arg-type]
    assert gathered.confirmed == direct.confirmed == 2000
    saved = direct.airtime_by_cell.sum() - gathered.airtime_by_cell.sum()
    answers = RF.mean_hops * 2000 * SIZES.running
    assert saved > 0.4 * answers  # a frame per relay instead of a frame per meter per hop
    assert gathered.t_at(1.0) < direct.t_at(1.0)  # type: ignore[operator]


@req("AMI-4")
def test_multicast_delta_stays_near_its_floor() -> None:
    """Issue 4's goal on the model (deterministic figures, not timings): bench/fleet.py
    prints them at 100k meters; here 10k meters keep the test fast."""
    for name, loss in (("rf-mesh", 0.0), ("plc", 0.0), ("plc", None), ("rf-mesh", None)):
        d = simulate(FleetConfig(meters=10_000, profile=PROFILES[name], delta=True, loss=loss)).to_dict()
        assert d["confirmed"] == 10_000
        assert 1.0 <= d["ratio_to_floor"] <= 1.5, (name, loss, d["ratio_to_floor"])
        assert 1.0 <= d["airtime_ratio_to_floor"] <= 1.4, (name, loss, d["airtime_ratio_to_floor"])
