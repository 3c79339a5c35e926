"""Exhaustive power loss: before every single storage write of every upgrade path, reboot, go on.

For each path (per component: transfer -> verify -> activate -> trial -> commit; revert paths;
delta, encrypted delta, scheduled activation) the path is first run once to count its writes,
then re-run from the same factory flash once per write with the power failing just before it
(and once more with that write torn in half). After each crash: boot, check the invariants,
drive the upgrade to its end, check again. Invariants: every component runs a bootable image
whose digest matches its record; energy registers plus logged gaps equal the integrated load;
calibration, configuration, credentials, HAN pairings and network registration are
bit-identical; the event log chain verifies; the upgrade ends as it would have without the
crash, never in ``failed``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from amiup import COMPONENTS
from amiup.meter import MemoryStorage, Meter, MeterConfig, PowerLoss
from amiup.meter.eventlog import verify_export
from amiup.meter.firmware import behaviour
from amiup.meter.localport import LocalPort, issue_credential, sign_challenge
from amiup.meter.slots import slot_digest, slot_prefix
from amiup.trust import generate_key
from reqmark import req
from support_meter import SERIAL, T0, Orders, header, keys, new_meter, package, payload

TOOL = generate_key()
CREDENTIAL = issue_credential(keys()["utility"], TOOL.public_key(), tool_id="van-1",
                              role="installer", not_before=int(T0), not_after=int(T0 + 86400),
                              meters=(SERIAL,))
IMAGE = 8192
BLOCK = 128  # small blocks: more writes per path, so more crash points
CONFIG = MeterConfig(trial_window=30.0, metrology_gap=2.0, save_interval=5.0, log_capacity=24)


@dataclass(frozen=True)
class Path:
    """One upgrade path: which package, how it is activated, and how it must end."""

    name: str
    component: str
    pkg: bytes
    order: bytes
    expect_state: str
    expect_version: str
    activation: str = "now"  # "now" | "scheduled"
    contact: bool = True
    local: bool = False  # through the local port with a field-tool credential

    @property
    def parts(self) -> tuple[bytes, bytes]:
        """(signed header, payload), decoded once per path."""
        got = _PARTS.get(self.name)
        if got is None:
            got = _PARTS[self.name] = (header(self.pkg), payload(self.pkg))
        return got


_PARTS: dict[str, tuple[bytes, bytes]] = {}


def _paths() -> list[tuple[Path, MemoryStorage]]:
    """Paths with their factory flash (the same for every crash point of a path)."""
    out = []

    def add(name: str, comp: str, pkg: bytes, state: str, version: str, **kw: object) -> None:
        factory = MemoryStorage()
        meter = new_meter(factory, image_size=IMAGE, config=CONFIG)
        del meter
        order = Orders().order(pkg, now=T0, activation="on-command")
        out.append((Path(name, comp, pkg, order, state, version, **kw), factory.clone()))  # type: ignore[arg-type]

    from amiup.meter import make_image

    for comp in COMPONENTS:
        add(f"full-{comp}", comp, package(comp, "2.0.0", 5, size=IMAGE), "committed", "2.0.0")
    base = make_image("han_app", "1.0.0", size=IMAGE)
    add("delta-han_app", "han_app",
        package("han_app", "2.1.0", 6, size=IMAGE, delta_from=base), "committed", "2.1.0")
    for comp in ("ami_app", "ami_comm", "han_comm"):  # delta for every other component too
        add(f"delta-{comp}", comp, package(comp, "2.1.0", 6, size=IMAGE,
                                           delta_from=make_image(comp, "1.0.0", size=IMAGE)),
            "committed", "2.1.0")
    mbase = make_image("metrology", "1.0.0", size=IMAGE)
    add("delta-encrypted-metrology", "metrology",
        package("metrology", "2.2.0", 7, size=IMAGE, delta_from=mbase, encrypt=True),
        "committed", "2.2.0")
    add("scheduled-ami_app", "ami_app", package("ami_app", "2.3.0", 8, size=IMAGE),
        "committed", "2.3.0", activation="scheduled")
    add("revert-self-test-ami_app", "ami_app",
        package("ami_app", "3.0.0", 9, size=IMAGE, fault="self-test"), "reverted", "1.0.0")
    add("revert-no-boot-han_comm", "han_comm",
        package("han_comm", "3.0.0", 9, size=IMAGE, fault="no-boot"), "reverted", "1.0.0")
    add("revert-no-contact-ami_comm", "ami_comm",
        package("ami_comm", "3.0.0", 9, size=IMAGE, fault="no-contact"), "reverted", "1.0.0",
        contact=False)
    add("local-han_comm", "han_comm", package("han_comm", "2.4.0", 6, size=IMAGE), "committed",
        "2.4.0", local=True)
    add("local-revert-ami_app", "ami_app",
        package("ami_app", "3.1.0", 9, size=IMAGE, fault="self-test"), "reverted", "1.0.0",
        local=True)
    add("revert-self-test-metrology", "metrology",
        package("metrology", "3.0.0", 9, size=IMAGE, fault="self-test"), "reverted", "1.0.0")
    return out


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def step(self, dt: float = 1.0) -> float:
        self.now += dt
        return self.now


def drive(meter: Meter, path: Path, clock: Clock) -> None:
    """Push the upgrade on from whatever state the meter is in until it ends (idempotent)."""
    c = path.component
    for _ in range(40):
        state = meter.comp[c]["state"]
        if state in ("committed", "reverted"):
            return
        assert state != "failed", f"{path.name}: upgrade failed ({meter.comp[c]['code']})"
        now = clock.step()
        if state in ("idle", "receiving", "received"):
            hdr, data = path.parts
            if path.local:
                port = LocalPort(meter)
                session = port.login(CREDENTIAL, sign_challenge(TOOL, port.challenge(now), SERIAL),
                                     now)
                acc = session.offer(hdr, now, block_size=BLOCK, activation="now")
            else:
                acc = meter.offer(path.order, hdr, now, block_size=BLOCK)
            for i in range(acc.n_blocks):
                if acc.missing[i // 8] >> (i % 8) & 1:
                    meter.block(acc.transfer_id, i, data[i * BLOCK:(i + 1) * BLOCK], now)
            meter.verify(c, now)
        elif state == "verified":
            at = None if path.activation == "now" else now + 3
            meter.activate(c, at, now)
        elif state == "scheduled":
            meter.tick(clock.step(5))
        elif state == "trial":
            if path.contact:
                meter.contact(now)
            else:
                meter.tick(clock.step(CONFIG.trial_window))
        else:
            raise AssertionError(f"{path.name}: unexpected state {state}")
    raise AssertionError(f"{path.name}: did not finish")


def check_invariants(meter: Meter, nv: dict[str, object], now: float) -> None:
    for c in COMPONENTS:
        rec = meter.comp[c]
        run = rec["slots"][rec["active"]]
        assert run is not None, f"{c}: no running image"
        digest = slot_digest(meter.storage, slot_prefix(c, rec["active"]), run["n"])
        assert digest == run["h"].hex(), f"{c}: running image does not match its record"
        assert rec["state"] == "trial" or behaviour(meter.slot_image(c)[:300]).boots
    assert meter.nv_snapshot() == nv
    m = meter.metrology
    truth = m.gain * m.profile.energy_wh(T0, now)
    future = m.gain * m.profile.energy_wh(now, max(now, m.paused_until))
    assert abs(m.energy_wh + m.gap_energy_wh - future - truth) < 1e-6 * max(1.0, truth)
    verify_export(meter.export_log(), meter.log.head)


def run_path(path: Path, factory: MemoryStorage, crash_at: int | None, torn: bool) -> int:
    """One run; returns the number of writes the path made (for the first, uncrashed run)."""
    storage = factory.clone()
    meter = Meter(storage, CONFIG)
    clock = Clock()
    meter.boot(clock.now)
    nv = meter.nv_snapshot()
    start = storage.writes
    if crash_at is not None:
        storage.arm_power_loss(crash_at, torn=torn)
    try:
        drive(meter, path, clock)
    except PowerLoss:
        meter.power_loss()
        storage.disarm()
        meter.boot(clock.now)
        check_invariants(meter, nv, clock.now)
        drive(meter, path, clock)
    else:
        assert crash_at is None, f"{path.name}: crash point {crash_at} never reached"
    writes = storage.writes - start
    storage.disarm()
    meter.tick(clock.step(5))
    check_invariants(meter, nv, clock.now)
    rec = meter.comp[path.component]
    assert rec["state"] == path.expect_state, f"{path.name} crash {crash_at}: {rec['state']}"
    assert rec["slots"][rec["active"]]["v"] == path.expect_version
    if path.local:  # reported exactly once for the UMS to reconcile (UMS-10)
        [local] = meter.status(b"n", clock.now).local_upgrades
        assert (local.component, local.outcome.split(":")[0]) == (path.component, path.expect_state)
    return writes


@req("SM-9", "SM-7", "MET-1", "SM-6", "SM-10", "SM-2", "UMS-10")
def test_power_loss_before_every_write_of_every_path() -> None:
    total = 0
    per_path = []
    for path, factory in _paths():
        writes = run_path(path, factory, None, False)
        for k in range(writes):
            for torn in (False, True):
                run_path(path, factory, k, torn)
                total += 1
        per_path.append(f"{path.name}={writes}")
    print(f"\ncrash points tested: {total} ({len(per_path)} paths: {', '.join(per_path)})")
    assert total >= 2000


@req("SM-9", "SM-2")
@pytest.mark.parametrize("torn", [False, True])
def test_power_loss_during_recovery_too(torn: bool) -> None:
    """A second power loss while recovering from the first still ends cleanly."""
    path, factory = next(p for p in _paths() if p[0].name == "delta-han_app")
    writes = run_path(path, factory, None, False)
    count = 0
    for first in range(0, writes, 3):
        for second in range(4):
            storage = factory.clone()
            meter = Meter(storage, CONFIG)
            clock = Clock()
            meter.boot(clock.now)
            nv = meter.nv_snapshot()
            storage.arm_power_loss(first, torn=torn)
            try:
                drive(meter, path, clock)
                continue
            except PowerLoss:
                pass
            storage.arm_power_loss(second, torn=torn)
            try:
                meter.boot(clock.now)
                drive(meter, path, clock)
            except PowerLoss:
                storage.disarm()
                meter.boot(clock.now)
                drive(meter, path, clock)
            storage.disarm()
            check_invariants(meter, nv, clock.now)
            assert meter.comp["han_app"]["state"] == "committed"
            count += 1
    print(f"\ndouble-fault crash points tested: {count}")
    assert count >= 20
