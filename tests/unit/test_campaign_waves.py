"""Wave planning per cell: pilot, cumulative steps, proportional spread, exact totals."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from amiup.errors import AmiupError
from amiup.ums.waves import WaveSpec, plan_waves
from reqmark import req


def cells_of(n: int, k: int) -> list[str]:
    return [f"c{i % k}" for i in range(n)]


@req("UMS-7")
def test_pilot_then_cumulative_steps_then_the_rest() -> None:
    plan = plan_waves(cells_of(1000, 10),
                      WaveSpec.from_dict({"pilot": 10, "steps": ["10%", "50%"]}))
    assert plan.names == ("pilot", "wave 1", "wave 2", "wave 3")
    assert plan.sizes == (10, 90, 400, 500)


@req("UMS-7", "AMI-3")
def test_pilot_lands_in_distinct_cells_never_one_cell() -> None:
    plan = plan_waves(cells_of(1000, 10), WaveSpec.from_dict({"pilot": 10}))
    pilot = plan.per_cell(cells_of(1000, 10))[0]
    assert len(pilot) == 10 and set(pilot.values()) == {1}


@req("UMS-7", "AMI-3")
def test_each_wave_takes_its_share_of_every_cell() -> None:
    # uneven cells: 600, 300, 100 meters; a 10% wave takes ~60, ~30, ~10
    cells = ["big"] * 600 + ["mid"] * 300 + ["small"] * 100
    plan = plan_waves(cells, WaveSpec.from_dict({"steps": ["10%", "50%"]}))
    first = plan.per_cell(cells)[0]
    assert first == {"big": 60, "mid": 30, "small": 10}
    second = plan.per_cell(cells)[1]
    assert second == {"big": 240, "mid": 120, "small": 40}


def test_claim_order_is_round_robin_over_cells_within_a_wave() -> None:
    cells = cells_of(40, 4)
    plan = plan_waves(cells, WaveSpec.from_dict({"steps": ["50%"]}))
    first_four = [cells[i] for i in plan.order[:4].tolist()]
    assert sorted(first_four) == ["c0", "c1", "c2", "c3"]
    waves_in_order = plan.wave[plan.order].tolist()
    assert waves_in_order == sorted(waves_in_order)


def test_counts_and_percentages_mix_and_clip() -> None:
    plan = plan_waves(cells_of(50, 5), WaveSpec.from_dict({"pilot": "2%", "steps": [20, 500]}))
    assert plan.sizes == (1, 19, 30)
    assert plan_waves(cells_of(3, 1), WaveSpec.from_dict({"pilot": 10})).sizes == (3,)


def test_empty_target_gives_no_wave() -> None:
    plan = plan_waves([], WaveSpec.from_dict({"pilot": 5}))
    assert plan.sizes == () and len(plan.order) == 0


@pytest.mark.parametrize("bad", [{"pilot": -1}, {"pilot": "120%"}, {"steps": ["x"]},
                                 {"steps": "10%"}, {"pilot": True}, {"pilot": 1.5}])
def test_bad_sizes_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(AmiupError) as ex:
        WaveSpec.from_dict(bad)
    assert ex.value.code == "invalid-argument"


def test_spec_round_trips() -> None:
    spec = WaveSpec.from_dict({"pilot": 10, "steps": ["12.5%", 300]})
    assert WaveSpec.from_dict(spec.to_dict()) == spec


@settings(max_examples=60, deadline=None)
@given(
    sizes=hs.lists(hs.integers(1, 40), min_size=1, max_size=12),
    pilot=hs.integers(0, 30),
    steps=hs.lists(hs.integers(0, 100), max_size=4),
)
def test_every_meter_in_exactly_one_wave_and_cells_stay_proportional(
    sizes: list[int], pilot: int, steps: list[int]
) -> None:
    cells = [f"c{i}" for i, n in enumerate(sizes) for _ in range(n)]
    spec = WaveSpec.from_dict({"pilot": pilot, "steps": [f"{s}%" for s in sorted(steps)]})
    plan = plan_waves(cells, spec)
    assert sorted(plan.order.tolist()) == list(range(len(cells)))
    assert sum(plan.sizes) == len(cells)
    assert all(s > 0 for s in plan.sizes)
    # each wave takes its share of what every cell has left, within one meter
    room = Counter(cells)
    for w, per in enumerate(plan.per_cell(cells)):
        left = sum(room.values())
        for c in room:
            fair = plan.sizes[w] * room[c] / left
            assert abs(per.get(c, 0) - fair) < 1 + 1e-9
        room.subtract(per)


def test_integer_cell_codes_plan_like_cell_names() -> None:
    import numpy as np

    names = ["a", "b", "c", "a", "b", "a", "a", "c"] * 5
    codes = np.asarray([{"a": 0, "b": 1, "c": 2}[x] for x in names], dtype=np.int64)
    spec = WaveSpec.from_dict({"pilot": 3, "steps": ["50%"]})
    by_name, by_code = plan_waves(names, spec), plan_waves(codes, spec)
    assert by_name.sizes == by_code.sizes
    assert by_name.wave.tolist() == by_code.wave.tolist()
