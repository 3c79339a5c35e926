"""The event loop and the simulated network: determinism, priorities, loss, offline meters."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from amiup.errors import AmiupError
from amiup.network.events import EventLoop
from amiup.network.profiles import PROFILES, profile
from amiup.network.sim import Impairments, SimNetwork
from reqmark import req


def test_event_loop_orders_by_time_priority_then_insertion() -> None:
    loop = EventLoop()
    seen: list[str] = []
    loop.schedule(2.0, lambda: seen.append("late"))
    loop.schedule(1.0, lambda: seen.append("b"), priority=1)
    loop.schedule(1.0, lambda: seen.append("a"), priority=0)
    loop.schedule(1.0, lambda: seen.append("c"), priority=1)
    loop.run(until=1.5)
    assert seen == ["a", "b", "c"] and loop.now == 1.5
    loop.run()
    assert seen[-1] == "late"
    with pytest.raises(AmiupError):
        loop.schedule(-1.0, lambda: None)


def test_event_loop_is_bounded() -> None:
    loop = EventLoop()

    def forever() -> None:
        loop.schedule(0.0, forever)

    loop.schedule(0.0, forever)
    with pytest.raises(AmiupError) as ex:
        loop.run(max_steps=1000)
    assert ex.value.code == "timeout"


def _collect(box: list[bytes]) -> Callable[[bytes, bool], None]:
    return lambda data, multicast: box.append(data)


def _net(imp: Impairments | None = None) -> tuple[EventLoop, SimNetwork, dict[str, list[bytes]]]:
    loop = EventLoop()
    net = SimNetwork(loop, PROFILES["rf-mesh"], imp, seed=5)
    inbox: dict[str, list[bytes]] = {}
    for i in range(20):
        mid = f"m{i}"
        inbox[mid] = []
        net.add_meter(mid, "c0", 1 + i % 6, _collect(inbox[mid]))
    return loop, net, inbox


def test_airtime_counts_hops_and_multicast_reaches_the_deepest_hop() -> None:
    loop, net, inbox = _net()
    net.down("m0", b"x" * 100)  # hop 1
    net.down("m5", b"x" * 100)  # hop 6
    net.multicast("c0", b"y" * 100)
    loop.run()
    cell = net.cells["c0"]
    per_frame = net.cost(100, meter_id="m0")
    assert cell.airtime["upgrade"] == pytest.approx(per_frame * (1 + 6 + 6))
    assert all(b"y" * 100 in got for got in inbox.values())


def test_loss_is_independent_per_meter_and_offline_meters_hear_nothing() -> None:
    loop, net, inbox = _net(Impairments(loss=0.3))
    net.set_online("m3", False)
    for _ in range(200):
        net.multicast("c0", b"z")
    loop.run()
    got = {m: len(v) for m, v in inbox.items()}
    assert got["m3"] == 0
    others = [n for m, n in got.items() if m != "m3"]
    assert min(others) > 100 and max(others) < 180  # about 70% of 200 each
    assert len(set(others)) > 5  # independent draws, not one shared fate


@req("AMI-3")
def test_reads_are_served_before_queued_upgrade_frames() -> None:
    loop, net, _ = _net()
    for _ in range(50):
        net.down("m5", b"u" * 1000)  # a long upgrade queue
    net.start_reads(interval_s=5.0, until=30.0)
    loop.run(until=60.0)
    # a read waits at most for the frame on air, not for the whole upgrade queue
    assert max(net.read_latencies) < 5.0
    assert len(net.read_latencies) > 20


def test_profiles_carry_their_sources_figures() -> None:
    rf, plc, cell = profile("rf-mesh"), profile("plc"), profile("cellular")
    assert (rf.phy_bps, rf.usable_share, rf.max_hops) == (150_000, 0.75, 6)
    assert (plc.phy_bps, plc.max_hops, plc.meters_per_cell) == (30_000, 4, 300)
    assert not cell.multicast and not cell.shared_cell
    with pytest.raises(AmiupError):
        profile("carrier-pigeon")


@req("AMI-4")
def test_a_routing_tree_leaves_unicast_and_multicast_costs_unchanged() -> None:
    loop, net, inbox = _net()
    net.build_tree(seed=3)
    cell = net.cells["c0"]
    assert all((cell.parent[m] is None) == (cell.hops[m] == 1) for m in cell.meters)
    net.down("m5", b"x" * 100)  # hop 6: still 6 hops from the collector
    net.multicast("c0", b"y" * 100)
    loop.run()
    assert cell.airtime["upgrade"] == pytest.approx(net.cost(100, meter_id="m0") * (6 + 6))
    assert all(b"y" * 100 in got for got in inbox.values())
