"""Metrology: registers follow the integrated load through every upgrade (MET-1..MET-5)."""

from __future__ import annotations

import pytest

from amiup.errors import AmiupError
from amiup.meter import Meter
from amiup.meter.localport import LocalPort, issue_credential, sign_challenge
from amiup.meter.metrology import LoadProfile, Metrology
from amiup.package import build_package
from amiup.trust import generate_key
from reqmark import req
from support_meter import (
    HW_REV,
    MODEL,
    SERIAL,
    T0,
    VENDOR,
    Orders,
    header,
    install,
    keys,
    new_meter,
    package,
    payload,
)


def truth(meter: Meter, now: float) -> float:
    m = meter.metrology
    return m.gain * m.profile.energy_wh(T0, now)


def test_profile_integral_is_exact() -> None:
    p = LoadProfile(((10.0, 360.0), (20.0, 0.0)))
    assert p.energy_wh(0, 30) == pytest.approx(1.0)
    assert p.energy_wh(5, 65) == pytest.approx(2.0)
    assert p.energy_wh(5, 5) == 0.0
    m = Metrology(2.0, p, 0.0)
    m.advance(30)
    assert m.energy_wh == pytest.approx(2.0)


@req("MET-1", "G-4")
def test_registers_keep_accumulating_during_transfer_verify_and_staging() -> None:
    meter, orders = new_meter(), Orders()
    pkg = package("ami_app", "2.0.0", 2, size=16384)
    acc = meter.offer(orders.order(pkg, now=T0 + 10), header(pkg), T0 + 10)
    data = payload(pkg)
    readings = []
    for i in range(acc.n_blocks):
        t = T0 + 100 + 300 * i
        meter.block(acc.transfer_id, i, data[i * 1024:(i + 1) * 1024], t)
        meter.tick(t)
        readings.append(meter.metrology.energy_wh)
        assert meter.metrology.energy_wh == pytest.approx(truth(meter, t))
    assert readings == sorted(readings) and readings[0] < readings[-1]
    t_end = T0 + 100 + 300 * acc.n_blocks
    meter.verify("ami_app", t_end)
    meter.activate("ami_app", None, t_end + 60)
    assert meter.metrology.energy_wh == pytest.approx(truth(meter, t_end + 60))
    assert meter.metrology.gap_seconds == 0.0  # non-metrology activation: no gap


@req("MET-2")
@pytest.mark.parametrize("component", ["ami_app", "ami_comm", "han_app", "han_comm"])
def test_non_metrology_upgrade_leaves_metrology_untouched(component: str) -> None:
    meter, orders = new_meter(), Orders()
    before_image = meter.slot_image("metrology")
    before_cal = meter.records.load("cal")
    before_floor = meter.comp["metrology"]["floor"]
    install(meter, package(component, "2.0.0", 2), orders, T0 + 500)
    meter.contact(T0 + 501)
    assert meter.comp[component]["state"] == "committed"
    assert meter.slot_image("metrology") == before_image
    assert meter.records.load("cal") == before_cal
    assert meter.comp["metrology"]["floor"] == before_floor
    assert meter.metrology.energy_wh == pytest.approx(truth(meter, T0 + 501))
    assert meter.storage.keys("slot/metrology/") == ["slot/metrology/0/000000"]


@req("MET-3", "SM-7")
def test_metrology_upgrade_keeps_registers_and_calibration_with_a_bounded_logged_gap() -> None:
    meter, orders = new_meter(), Orders()
    cal = meter.records.load("cal")
    now = T0 + 1000
    before = meter.metrology.energy_wh
    install(meter, package("metrology", "2.0.0", 2), orders, now)
    assert meter.identity.versions["metrology"] == "2.0.0"
    assert meter.records.load("cal") == cal
    later = now + 30
    meter.tick(later)
    m = meter.metrology
    assert m.energy_wh >= before
    assert 0 < m.gap_seconds <= meter.config.metrology_gap
    assert m.energy_wh + m.gap_energy_wh == pytest.approx(truth(meter, later))
    gaps = [e for e in meter.log.entries if e.kind == "metrology-gap"]
    assert len(gaps) == 1 and "2.0s" in gaps[0].detail
    report = meter.status(b"n", later)
    assert report.metrology["gap_seconds"] == pytest.approx(m.gap_seconds)
    assert report.metrology["gap_energy_wh"] > 0


@req("MET-4")
def test_metrology_package_carries_its_legal_identity_to_the_meter() -> None:
    meter, orders = new_meter(), Orders()
    with pytest.raises(AmiupError) as info:
        build_package(b"x" * 100, component="metrology", version="2.0.0", security_seq=2,
                      vendor=VENDOR, model=MODEL, hw_revs=[HW_REV], sign_keys=[keys()["vendor"]])
    assert info.value.code == "legal-fields-missing"
    install(meter, package("metrology", "2.0.0", 2), orders, T0 + 10)
    run = meter.comp["metrology"]["slots"][meter.comp["metrology"]["active"]]
    assert (run["l"], run["r"]) == ("L2.0.0", "PTB-22.1")


@req("MET-5", "MET-4")
def test_legal_version_readable_remotely_and_locally() -> None:
    meter, orders = new_meter(), Orders()
    install(meter, package("metrology", "2.0.0", 2), orders, T0 + 10)
    remote = meter.status(b"r", T0 + 20)
    assert remote.legal_version == "L2.0.0"
    assert remote.components["metrology"].legal_version == "L2.0.0"
    tool = generate_key()
    cred = issue_credential(keys()["utility"], tool.public_key(), tool_id="t", role="reader",
                            not_before=int(T0), not_after=int(T0 + 999), meters=(SERIAL,))
    port = LocalPort(meter)
    session = port.login(cred, sign_challenge(tool, port.challenge(T0 + 30), SERIAL), T0 + 30)
    assert session.status(b"l", T0 + 30).legal_version == "L2.0.0"
