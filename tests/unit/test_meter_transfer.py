"""Property: blocks in any order, duplicated, with power losses anywhere, give the exact image."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amiup.meter import MemoryStorage, Meter, PowerLoss, make_image
from reqmark import req
from support_meter import T0, Orders, header, new_meter, package, payload

IMAGE = 5000
BLOCK = 256
PKG = package("han_app", "2.0.0", 2, size=IMAGE)
N = -(-IMAGE // BLOCK)
FACTORY = MemoryStorage()
new_meter(FACTORY)


@req("SM-2", "SM-9")
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(order=st.permutations(range(N)), dups=st.lists(st.integers(0, N - 1), max_size=8),
       crashes=st.lists(st.integers(0, 30), max_size=3))
def test_any_block_order_with_duplicates_and_power_losses(order: list[int], dups: list[int],
                                                          crashes: list[int]) -> None:
    storage = FACTORY.clone()
    meter = Meter(storage)
    meter.boot(T0)
    o = Orders(counter=0).order(PKG, now=T0)
    sequence = list(order) + list(dups)
    data = payload(PKG)
    pending = list(crashes)
    now = T0
    while True:
        now += 1
        if pending:
            storage.arm_power_loss(pending.pop(0))
        try:
            if meter.comp["han_app"]["state"] in ("trial", "committed"):
                break  # the crash hit after activation: recovery finished the upgrade
            acc = meter.offer(o, header(PKG), now, block_size=BLOCK)
            for i in sequence:
                meter.block(acc.transfer_id, i, data[i * BLOCK:(i + 1) * BLOCK], now)
            assert not any(meter.missing(acc.transfer_id))
            meter.verify("han_app", now)
            meter.activate("han_app", None, now)
            break
        except PowerLoss:
            storage.disarm()
            meter.boot(now)
    storage.disarm()
    assert meter.slot_image("han_app") == make_image("han_app", "2.0.0", size=IMAGE)
    assert meter.comp["han_app"]["state"] == "committed"
