"""The upgrade agent end to end on one meter: states, slots, resume, activation, trial, revert."""

from __future__ import annotations

import pytest

from amiup import COMPONENTS
from amiup.errors import AmiupError
from amiup.meter import MemoryStorage, Meter, MeterConfig, PowerLoss, make_image, verify_report
from amiup.meter.agent import STATES, TABLE, mermaid, step
from amiup.meter.localport import LocalPort, issue_credential, sign_challenge
from amiup.trust import generate_key
from reqmark import req
from support_meter import (
    SERIAL,
    T0,
    Orders,
    header,
    install,
    keys,
    new_meter,
    package,
    payload,
    send_blocks,
)

NOW = T0 + 100


def test_state_table_is_closed_and_refuses_unknown_events() -> None:
    for src, moves in TABLE.items():
        assert src in STATES and all(dst in STATES for dst in moves.values())
    reachable = {"idle"}
    frontier = ["idle"]
    while frontier:
        for dst in TABLE[frontier.pop()].values():
            if dst not in reachable:
                reachable.add(dst)
                frontier.append(dst)
    assert reachable == set(STATES)
    with pytest.raises(AmiupError) as info:
        step("idle", "activate")
    assert info.value.code == "invalid-state"
    assert "idle --> receiving: offer" in mermaid()


@req("SM-1", "UMS-8")
def test_status_reports_running_and_staged_versions_signed_with_the_nonce() -> None:
    meter, orders = new_meter(), Orders()
    assert install(meter, package("han_app", "2.0.0", 3), orders, NOW,
                   activation="on-command") == "verified"
    report = verify_report(meter.status(b"nonce-1", NOW).to_bytes(), meter.public_key, b"nonce-1")
    han = report.components["han_app"]
    assert (han.running_version, han.staged_version, han.state) == ("1.0.0", "2.0.0", "verified")
    assert report.components["ami_app"].running_version == "1.0.0"
    with pytest.raises(AmiupError) as info:
        verify_report(report.to_bytes(), meter.public_key, b"nonce-2")
    assert info.value.code == "report-replayed"
    with pytest.raises(AmiupError) as info:
        verify_report(report.to_bytes(), generate_key().public_key(), b"nonce-1")
    assert info.value.code == "bad-signature"


@req("SM-2", "G-4")
def test_transfer_in_any_order_resumes_after_power_loss_from_missing_blocks() -> None:
    meter, orders = new_meter(), Orders()
    pkg = package("ami_app", "2.0.0", 2, size=10 * 1024)
    order = orders.order(pkg, now=NOW)
    acc = meter.offer(order, header(pkg), NOW)
    assert acc.n_blocks == 10 and acc.missing == b"\xff\x03"
    send_blocks(meter, acc, payload(pkg), NOW, indices=[9, 0, 5, 3])
    assert meter.status(b"n", NOW).components["ami_app"].received == 4  # in service meanwhile
    meter.power_loss()
    meter.boot(NOW + 50)
    again = meter.offer(order, header(pkg), NOW + 60)  # the same order resumes, not a replay
    assert again.transfer_id == acc.transfer_id
    missing = [i for i in range(10) if again.missing[i // 8] >> (i % 8) & 1]
    assert missing == [1, 2, 4, 6, 7, 8]
    assert meter.missing(acc.transfer_id) == again.missing
    writes = meter.storage.writes
    send_blocks(meter, again, payload(pkg), NOW + 60)
    assert meter.storage.writes - writes == 6  # one write per missing block, nothing resent
    assert meter.verify("ami_app", NOW + 61) == "verified"


@req("SM-3")
def test_verify_refuses_an_incomplete_image_without_discarding_it() -> None:
    meter, orders = new_meter(), Orders()
    pkg = package("ami_app", "2.0.0", 2, size=4096)
    acc = meter.offer(orders.order(pkg, now=NOW), header(pkg), NOW)
    send_blocks(meter, acc, payload(pkg), NOW, indices=[0, 1])
    with pytest.raises(AmiupError) as info:
        meter.verify("ami_app", NOW)
    assert info.value.code == "transfer-incomplete"
    assert meter.comp["ami_app"]["state"] == "receiving"
    send_blocks(meter, acc, payload(pkg), NOW, indices=[2, 3])
    assert meter.verify("ami_app", NOW) == "verified"


@req("SM-5")
def test_activation_is_separate_scheduled_and_cancellable() -> None:
    meter, orders = new_meter(), Orders()
    assert install(meter, package("ami_app", "2.0.0", 2), orders, NOW,
                   activation="on-command") == "verified"
    assert meter.activate("ami_app", NOW + 3600, NOW) == "scheduled"
    assert meter.next_deadline() == NOW + 3600
    meter.tick(NOW + 3599)
    assert meter.identity.versions["ami_app"] == "1.0.0"
    meter.tick(NOW + 3600)
    assert meter.identity.versions["ami_app"] == "2.0.0"
    # order-driven schedule, then cancelled before it fires
    assert install(meter, package("han_app", "2.0.0", 2), orders, NOW,
                   activation=int(NOW + 500)) == "scheduled"
    assert meter.cancel("han_app", NOW + 10) == "idle"
    meter.tick(NOW + 1000)
    assert meter.identity.versions["han_app"] == "1.0.0"
    assert meter.status(b"n", NOW + 1000).components["han_app"].staged_version is None
    with pytest.raises(AmiupError):
        meter.activate("han_app", None, NOW + 1000)


@req("SM-6", "SEC-10")
@pytest.mark.parametrize(("component", "fault", "code"), [
    ("ami_app", "self-test", "self-test-failed"),
    ("han_comm", "no-boot", "boot-failed"),
    ("metrology", "self-test", "self-test-failed"),
])
def test_bad_image_reverts_by_itself_and_reports_why(component: str, fault: str,
                                                     code: str) -> None:
    meter, orders = new_meter(), Orders()
    before = meter.slot_image(component)
    assert install(meter, package(component, "2.0.0", 2, fault=fault), orders, NOW) == "reverted"
    st = meter.status(b"n", NOW).components[component]
    assert (st.running_version, st.state, st.code) == ("1.0.0", "reverted", code)
    assert meter.slot_image(component) == before
    assert meter.comp[component]["floor"] == 0  # anti-rollback floor not raised by a revert
    kinds = [e.kind for e in meter.pop_events() if e.component == component]
    assert kinds[-2:] == ["activated", "reverted"]
    # and the meter takes the next good image
    assert install(meter, package(component, "2.0.1", 3), orders, NOW + 5) == "committed"


@req("AMI-1", "SM-6")
def test_ami_comm_commits_on_re_contact_and_reverts_without_it() -> None:
    meter = new_meter(config=MeterConfig(trial_window=120))
    orders = Orders()
    assert install(meter, package("ami_comm", "2.0.0", 2), orders, NOW) == "trial"
    assert meter.reachable
    meter.contact(NOW + 5)
    assert meter.comp["ami_comm"]["state"] == "committed"
    assert install(meter, package("ami_comm", "3.0.0", 3, fault="no-contact"), orders,
                   NOW + 10) == "trial"
    assert not meter.reachable
    meter.contact(NOW + 11)  # nothing gets through a broken comm stack
    meter.tick(NOW + 129)
    assert meter.comp["ami_comm"]["state"] == "trial"
    meter.tick(NOW + 130)  # trial window (120 s) over: reverted by itself
    st = meter.status(b"n", NOW + 130).components["ami_comm"]
    assert (st.running_version, st.state, st.code) == ("2.0.0", "reverted", "no-contact")
    assert meter.reachable


@req("AMI-1", "SM-9")
def test_power_loss_during_ami_comm_trial_keeps_the_window() -> None:
    meter = new_meter(config=MeterConfig(trial_window=120))
    orders = Orders()
    install(meter, package("ami_comm", "2.0.0", 2, fault="no-contact"), orders, NOW)
    meter.power_loss()
    meter.boot(NOW + 200)  # back after the window: reverted at boot
    assert meter.comp["ami_comm"]["state"] == "reverted"
    assert meter.identity.versions["ami_comm"] == "1.0.0"


@req("G-2", "SM-10")
def test_components_are_upgraded_independently_in_their_own_two_slots() -> None:
    meter, orders = new_meter(), Orders()
    images = {c: meter.slot_image(c) for c in COMPONENTS}
    storage = meter.storage
    assert isinstance(storage, MemoryStorage)
    before = storage.snapshot()
    install(meter, package("han_app", "2.0.0", 2), orders, NOW)
    changed = {k for k, v in storage.snapshot().items() if before.get(k) != v}
    changed |= set(before) - set(storage.snapshot())
    touched = {k.split("/")[2 if k.startswith("rec/") else 1] for k in changed
               if k.startswith(("slot/", "xfer/", "rec/comp/"))}
    assert touched == {"han_app"}
    for c in COMPONENTS:
        if c != "han_app":
            assert meter.slot_image(c) == images[c]
    assert meter.comp["han_app"]["active"] == 1
    assert storage.keys("slot/han_app/0/") and storage.keys("slot/han_app/1/")


@req("SM-7", "AMI-2", "HAN-2")
def test_nv_data_survives_upgrades_and_reverts_bit_for_bit() -> None:
    meter, orders = new_meter(), Orders()
    nv = meter.nv_snapshot()
    install(meter, package("ami_comm", "2.0.0", 2), orders, NOW)
    meter.contact(NOW + 1)
    install(meter, package("han_comm", "2.0.0", 2), orders, NOW + 2)
    install(meter, package("han_app", "2.0.0", 2, fault="self-test"), orders, NOW + 3)
    install(meter, package("metrology", "2.0.0", 2), orders, NOW + 4)
    assert meter.identity.versions["ami_comm"] == "2.0.0"
    assert meter.nv_snapshot() == nv
    assert meter.records.load("net") == nv["net"]
    assert meter.records.load("han") == nv["han"]


@req("HAN-1", "G-1")
def test_han_upgrades_remote_and_local_without_disturbing_metrology_or_ami() -> None:
    meter, orders = new_meter(), Orders()
    others = {c: meter.slot_image(c) for c in ("metrology", "ami_app", "ami_comm")}
    pkg_app = package("han_app", "2.0.0", 2)
    assert install(meter, pkg_app, orders, NOW) == "committed"  # remote
    pkg_comm = package("han_comm", "2.0.0", 2)
    tool = generate_key()
    cred = issue_credential(keys()["utility"], tool.public_key(), tool_id="van-12",
                            role="installer", not_before=int(T0), not_after=int(NOW + 3600),
                            meters=(SERIAL,))
    port = LocalPort(meter)
    session = port.login(cred, sign_challenge(tool, port.challenge(NOW + 10), SERIAL), NOW + 10)
    acc = session.offer(header(pkg_comm), NOW + 10, activation="now")
    for i in range(acc.n_blocks):
        session.block(acc.transfer_id, i, payload(pkg_comm)[i * 1024:(i + 1) * 1024], NOW + 10)
    assert session.verify("han_comm", NOW + 11) == "committed"  # local
    assert {c: meter.slot_image(c) for c in others} == others
    assert meter.metrology.energy_wh + meter.metrology.gap_energy_wh == pytest.approx(
        meter.metrology.gain * meter.metrology.profile.energy_wh(T0, NOW + 11))
    assert meter.metrology.gap_seconds == 0.0
    assert meter.reachable


@req("HAN-3")
def test_han_comm_upgrade_moves_the_interface_to_the_protocol_the_package_brings() -> None:
    meter, orders = new_meter(), Orders()
    assert meter.status(b"n", NOW).components["han_comm"].protocol == "zigbee-sep-1.1"
    install(meter, package("han_comm", "2.0.0", 2, protocol="matter-1.3"), orders, NOW)
    assert meter.status(b"n", NOW).components["han_comm"].protocol == "matter-1.3"


@req("G-1", "UMS-10", "SEC-8")
def test_the_same_package_installs_locally_and_the_upgrade_is_reported_at_next_status() -> None:
    pkg = package("ami_app", "2.0.0", 2)
    remote_meter = new_meter()
    assert install(remote_meter, pkg, Orders(), NOW) == "committed"

    meter = new_meter()
    tool = generate_key()
    cred = issue_credential(keys()["utility"], tool.public_key(), tool_id="van-12",
                            role="installer", not_before=int(T0), not_after=int(NOW + 3600),
                            meters=(SERIAL,))
    port = LocalPort(meter)
    session = port.login(cred, sign_challenge(tool, port.challenge(NOW), SERIAL), NOW)
    acc = session.offer(header(pkg), NOW, activation="now")
    data = payload(pkg)
    for i in range(acc.n_blocks):
        session.block(acc.transfer_id, i, data[i * 1024:(i + 1) * 1024], NOW)
    assert session.verify("ami_app", NOW) == "committed"
    assert meter.slot_image("ami_app") == remote_meter.slot_image("ami_app")
    meter.power_loss()
    meter.boot(NOW + 100)
    report = meter.status(b"ums", NOW + 100)
    [local] = report.local_upgrades
    assert (local.component, local.version, local.tool_id, local.outcome) == (
        "ami_app", "2.0.0", "van-12", "committed")
    assert any(e.kind == "local-login" for e in meter.log.entries)


@req("G-4", "MET-1")
def test_meter_answers_and_measures_while_an_upgrade_is_in_progress() -> None:
    meter, orders = new_meter(), Orders()
    pkg = package("ami_comm", "2.0.0", 2, size=8192)
    acc = meter.offer(orders.order(pkg, now=NOW), header(pkg), NOW)
    send_blocks(meter, acc, payload(pkg), NOW + 10, indices=[0, 1, 2])
    report = meter.status(b"x", NOW + 900)
    assert report.components["ami_comm"].state == "receiving"
    assert report.metrology["energy_wh"] > 0
    assert meter.reachable


@req("SEC-10", "SM-8")
def test_events_and_alarms_are_queued_for_the_head_end() -> None:
    meter, orders = new_meter(), Orders()
    pkg = package("ami_app", "2.0.0", 2, model="OTHER")
    with pytest.raises(AmiupError):
        meter.offer(orders.order(pkg, now=NOW), header(pkg), NOW)
    [alarm] = meter.pop_alarms()
    assert (alarm.code, alarm.time) == ("wrong-model", NOW)
    assert meter.pop_alarms() == []
    install(meter, package("ami_app", "2.0.0", 2), orders, NOW + 1)
    kinds = [e.kind for e in meter.pop_events() if e.component == "ami_app"]
    assert kinds == ["offered", "received", "verified", "activated", "committed"]


@req("SM-9")
def test_dir_storage_meter_recovers_after_restart(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from amiup.meter import DirStorage

    meter = new_meter(DirStorage(tmp_path / "m"))
    orders = Orders()
    pkg = package("han_app", "2.0.0", 2, size=6000)
    order = orders.order(pkg, now=NOW)
    acc = meter.offer(order, header(pkg), NOW)
    send_blocks(meter, acc, payload(pkg), NOW, indices=[0, 1])
    meter.storage.arm_power_loss(0)
    with pytest.raises(PowerLoss):
        send_blocks(meter, acc, payload(pkg), NOW, indices=[2])
    again = Meter(DirStorage(tmp_path / "m"))
    again.boot(NOW + 5)
    acc2 = again.offer(order, header(pkg), NOW + 5)
    assert [i for i in range(acc2.n_blocks) if acc2.missing[i // 8] >> (i % 8) & 1] == [2, 3, 4, 5]
    send_blocks(again, acc2, payload(pkg), NOW + 5)
    assert again.verify("han_app", NOW + 6) == "verified"
    assert again.activate("han_app", None, NOW + 7) == "committed"
    assert make_image("han_app", "2.0.0", size=6000) == again.slot_image("han_app")


@req("SM-5", "SM-3")
def test_repeated_commands_get_the_same_answer_when_a_reply_was_lost() -> None:
    meter, orders = new_meter(), Orders()
    pkg = package("ami_app", "2.0.0", 2)
    assert install(meter, pkg, orders, NOW, activation="on-command") == "verified"
    assert meter.verify("ami_app", NOW + 1) == "verified"
    assert meter.activate("ami_app", None, NOW + 2) == "committed"
    assert meter.activate("ami_app", None, NOW + 3) == "committed"  # duplicate Activate
    assert meter.verify("ami_app", NOW + 4) == "committed"  # late duplicate Verify
    assert meter.cancel("han_app", NOW + 5) == "idle"
    bad = package("han_app", "2.0.0", 2)
    acc = meter.offer(orders.order(bad, now=NOW), header(bad), NOW + 6)
    data = bytearray(payload(bad))
    data[10] ^= 1
    send_blocks(meter, acc, bytes(data), NOW + 6)
    for _ in range(2):
        with pytest.raises(AmiupError) as info:
            meter.verify("han_app", NOW + 7)
        assert info.value.code == "digest-mismatch"
    assert [a.code for a in meter.pop_alarms()] == ["digest-mismatch"]  # alarmed once
