"""Delivery over the simulated AMI network with real meter agents behind the wire codec."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from amiup.headend.multicast import MulticastConfig
from amiup.headend.simrun import RunConfig
from amiup.headend.traffic import DeliveryWindows
from amiup.network.endpoint import MeterEndpoint
from amiup.network.sim import Impairments
from reqmark import req
from support_network import COMPONENT, T0, make_delivery, make_kit, make_meters, make_sim

DAY = 86400.0


def _bit_exact(endpoints: list[MeterEndpoint], image: bytes, component: str = COMPONENT) -> int:
    """How many meters run exactly ``image``."""
    return sum(ep.meter.slot_image(component) == image for ep in endpoints)


@req("SM-2", "AMI-4", "G-1", "SEC-2")
@pytest.mark.parametrize("strategy", ["unicast", "multicast"])
@pytest.mark.parametrize("loss", [0.0, 0.1, 0.3])
def test_delivery_is_bit_exact_under_loss_duplication_reordering_corruption(
    strategy: str, loss: float
) -> None:
    kit = make_kit()
    eps = make_meters(kit, 10)
    delivery, image = make_delivery(kit, [e.meter_id for e in eps])
    imp = Impairments(loss=loss, duplicate=0.05, reorder=0.05, corrupt=0.02)
    mc = MulticastConfig(expected_loss=loss)  # sets the coded symbols sent up front
    cfg = RunConfig(strategy=strategy, multicast=mc)  # type: ignore[arg-type]
    loop, _net, run = make_sim(eps, delivery, imp=imp, cells=2, config=cfg)
    run.start()
    cells = list(run.cells.values())
    out = run.run(T0 + DAY)
    assert {m: o.code for m, o in out.items() if o.confirmed_at is None} == {}
    assert _bit_exact(eps, image) == len(eps)
    if strategy == "multicast":
        # losses were repaired by coded symbols (each block multicast once, plain, in the data
        # round); a damaged frame never reached a decoder (the codec's check dropped it)
        assert all(cm.multicast_blocks >= cm.block_count for cm in cells)
        assert sum(cm.multicast_coded + cm.unicast_coded for cm in cells) > 0  # 2% corrupt, at least
        assert all(ep.coded_dropped == 0 for ep in eps)
    for ep in eps:
        assert ep.meter.status(b"", loop.now).components["ami_app"].running_version == "1.1.0"


@req("AMI-4")
def test_multicast_uses_far_less_airtime_than_unicast() -> None:
    air = {}
    for strategy in ("unicast", "multicast"):
        kit = make_kit()
        eps = make_meters(kit, 24)
        delivery, _ = make_delivery(kit, [e.meter_id for e in eps])
        _, net, run = make_sim(eps, delivery, imp=Impairments(loss=0.05), config=RunConfig(strategy=strategy))  # type: ignore[arg-type]
        run.start()
        run.run(T0 + DAY)
        assert len(run.confirmed) == 24
        air[strategy] = sum(c.airtime_bytes for c in net.cells.values())
    assert air["multicast"] * 3 < air["unicast"]


@req("SEC-2")
def test_corrupt_blocks_are_dropped_and_repaired() -> None:
    kit = make_kit()
    eps = make_meters(kit, 6)
    delivery, image = make_delivery(kit, [e.meter_id for e in eps])
    _, _, run = make_sim(eps, delivery, imp=Impairments(corrupt=0.2), config=RunConfig(strategy="multicast"))
    run.start()
    run.run(T0 + DAY)
    assert run.dropped_frames > 0  # damage was seen ...
    assert _bit_exact(eps, image) == 6  # ... and never reached a slot


@req("SEC-2", "SM-3")
def test_block_tampered_in_transit_with_valid_crc_is_refused_at_verify() -> None:
    kit = make_kit()
    eps = make_meters(kit, 2)
    delivery, _ = make_delivery(kit, [e.meter_id for e in eps])
    evil = bytearray(delivery.payload)
    evil[len(evil) // 2] ^= 0xFF  # an attacker on the path rewrites a block and its CRC
    tampered = dataclasses.replace(delivery, payload=bytes(evil))
    loop, _, run = make_sim(eps, tampered)
    run.start()
    out = run.run(T0 + DAY)
    assert {o.code for o in out.values()} == {"digest-mismatch"}
    assert all(o.confirmed_at is None for o in out.values())
    for ep in eps:
        assert ep.meter.status(b"", loop.now).components["ami_app"].running_version == "1.0.0"
    assert {a.code for _, a in run.alarms} == {"digest-mismatch"}  # SEC-10 alarm reached us


@req("SM-2", "UMS-9")
@pytest.mark.parametrize("strategy", ["unicast", "multicast"])
def test_meter_offline_mid_transfer_resumes_from_missing_blocks(strategy: str) -> None:
    kit = make_kit()
    eps = make_meters(kit, 4)
    delivery, image = make_delivery(kit, [e.meter_id for e in eps])
    cfg = RunConfig(strategy=strategy, share=0.2, retry_after_s=1800)  # type: ignore[arg-type]
    loop, net, run = make_sim(eps, delivery, config=cfg)
    victim = eps[3].meter_id
    blocks = -(-len(delivery.payload) // delivery.block_size)
    run.start()
    # take the meter off the network once it holds some but not all blocks
    for _ in range(100_000):
        loop.step()
        got = eps[3].meter.status(b"", loop.now).components["ami_app"].received
        if got >= blocks // 3:
            break
    assert 0 < got < blocks
    net.set_online(victim, False)
    loop.run(loop.now + 3600)
    assert run.outcomes[victim].confirmed_at is None
    held = eps[3].meter.status(b"", loop.now).components["ami_app"].received
    assert held >= got  # kept what it had while offline
    net.set_online(victim, True)
    run.run(T0 + 2 * DAY)
    assert run.outcomes[victim].confirmed_at is not None
    assert eps[3].meter.slot_image("ami_app") == image
    if strategy == "unicast":
        # resumed: blocks sent to it stay near one image, not one image per attempt
        assert run.outcomes[victim].blocks_sent <= blocks + 2 * cfg.session.window
        assert run.outcomes[victim].attempts >= 2


@req("SM-5", "AMI-4", "UMS-4")
def test_scheduled_activation_across_a_fleet() -> None:
    kit = make_kit()
    eps = make_meters(kit, 12)
    at = T0 + 6 * 3600
    delivery, image = make_delivery(kit, [e.meter_id for e in eps], activation=at)
    cfg = RunConfig(strategy="multicast")
    cfg = dataclasses.replace(cfg, session=dataclasses.replace(cfg.session, poll_s=1800, max_polls=50))
    loop, _, run = make_sim(eps, delivery, cells=3, config=cfg)
    run.start()
    run.run(at - 60)
    states = {ep.meter.status(b"", loop.now).components["ami_app"].state for ep in eps}
    assert states == {"scheduled"}
    assert _bit_exact(eps, image) == 0  # staged, not running
    run.run(T0 + DAY)
    assert len(run.confirmed) == 12
    assert min(o.confirmed_at for o in run.outcomes.values() if o.confirmed_at) >= at
    assert _bit_exact(eps, image) == 12


@req("AMI-1", "G-1")
def test_ami_comm_upgrade_commits_when_the_head_end_hears_the_meter() -> None:
    kit = make_kit()
    eps = make_meters(kit, 4)
    delivery, image = make_delivery(kit, [e.meter_id for e in eps], component="ami_comm")
    _, _, run = make_sim(eps, delivery, imp=Impairments(loss=0.1), config=RunConfig(strategy="multicast"))
    run.start()
    run.run(T0 + DAY)
    assert len(run.confirmed) == 4
    assert _bit_exact(eps, image, "ami_comm") == 4


@req("AMI-1", "SM-6")
def test_ami_comm_image_that_cannot_talk_reverts_by_itself() -> None:
    kit = make_kit()
    eps = make_meters(kit, 3)
    delivery, _ = make_delivery(kit, [e.meter_id for e in eps], component="ami_comm", fault="no-contact")
    loop, _, run = make_sim(eps, delivery)
    run.start()
    out = run.run(T0 + DAY)
    assert {o.code for o in out.values()} == {"no-contact"}
    for ep in eps:
        comp = ep.meter.status(b"", loop.now).components["ami_comm"]
        assert (comp.running_version, comp.state) == ("1.0.0", "reverted")


def _read_p95(share: float, traffic_class: str, upgrade: bool) -> tuple[float, float]:
    kit = make_kit(image_size=32768)
    eps = make_meters(kit, 20)
    delivery, _ = make_delivery(kit, [e.meter_id for e in eps], block_size=512)
    cfg = RunConfig(strategy="unicast", share=share, traffic_class=traffic_class, concurrency=20)  # type: ignore[arg-type]
    _loop, net, run = make_sim(eps, delivery, profile="plc", config=cfg)
    span = 1800.0
    net.start_reads(interval_s=20.0, until=T0 + span)
    if upgrade:
        run.start()
    run.run(T0 + span)
    lat = np.array(net.read_latencies)
    assert len(lat) > 500
    cell = net.cells["c0"]
    used = cell.airtime["upgrade"] / (net.profile.c_eff_bps / 8.0 * span)
    return float(np.percentile(lat, 95)), used


@req("AMI-3")
def test_traffic_budget_keeps_background_reads_fast() -> None:
    base, _ = _read_p95(1.0, "upgrade", upgrade=False)
    controlled, used = _read_p95(0.3, "upgrade", upgrade=True)
    uncontrolled, _ = _read_p95(1.0, "read", upgrade=True)
    assert used <= 0.3 * 1.05  # upgrades stayed within their share of airtime
    assert used > 0.1  # ... and did use it
    assert controlled < 2.0 * base
    assert uncontrolled > 3.0 * controlled  # without the budget and priority, reads suffer


@req("AMI-3", "UMS-4")
def test_no_upgrade_traffic_outside_delivery_windows() -> None:
    kit = make_kit()
    eps = make_meters(kit, 3)
    delivery, _ = make_delivery(kit, [e.meter_id for e in eps])
    windows = DeliveryWindows(((22 * 3600.0, 5 * 3600.0),))  # T0 is 08:00 UTC
    _loop, net, run = make_sim(eps, delivery, config=RunConfig(windows=windows))
    run.start()
    run.run(T0 + 13.9 * 3600)
    assert net.cells["c0"].airtime["upgrade"] == 0
    run.run(T0 + DAY)
    assert len(run.confirmed) == 3
    assert min(o.confirmed_at for o in run.outcomes.values() if o.confirmed_at) >= T0 + 14 * 3600
