"""Coded repair under attack: forged, foreign and misfit symbols, duplicates and power losses
in any order. Whatever arrives, the meter ends with the exact image verified, or refuses it
(digest-mismatch) and keeps running the old one; nothing else is ever staged or installed."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amiup.errors import AmiupError
from amiup.meter import Meter, make_image
from amiup.network.endpoint import MeterEndpoint
from amiup.wire import Block, Coded, Failed, Reject, Verified
from reqmark import req
from support_coded import IMAGE, Rig
from support_network import COMPONENT

ACTIONS = st.lists(st.sampled_from(["symbol", "forged", "foreign", "misfit", "block", "again", "power"]),
                   max_size=40)


def _power_loss(rig: Rig) -> None:
    storage = rig.ep.meter.storage
    rig.ep.meter.power_loss()
    meter = Meter(storage)
    rig.now += 60
    meter.boot(rig.now)
    rig.ep = MeterEndpoint(meter)


@req("SEC-2", "AMI-4", "SM-3")
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(actions=ACTIONS, share=st.floats(0.05, 0.5), seed=st.integers(0, 2**16))
def test_any_mix_of_symbols_ends_exact_or_refused(actions: list[str], share: float, seed: int) -> None:
    rig = Rig()
    rng = random.Random(seed)
    dropped = set(rng.sample(range(rig.n), max(1, round(rig.n * share))))
    rig.blocks_except(dropped)
    seq, forged = 0, False
    last: Coded | None = None
    for action in actions:
        if action == "symbol":
            last = rig.symbol(seq)
            seq += 1
            rig.send(last)
        elif action == "forged":  # a symbol whose bytes are not what its seq says
            data = bytearray(rig.encoder.symbol(seq))
            data[rng.randrange(len(data))] ^= 1 + rng.randrange(255)
            seq += 1
            rig.send(Coded(rig.tid, seq - 1, bytes(data)))
            forged = True
        elif action == "foreign":  # a real symbol of another transfer: never ours
            assert rig.send(Coded(rig.tid ^ 1, seq, rig.encoder.symbol(seq))) == []
        elif action == "misfit":  # wrong length: refused, by name, only when unicast
            [ans] = rig.send(Coded(rig.tid, seq, b"\x00" * 64), multicast=False)
            assert isinstance(ans, Reject) and ans.code == "malformed-message"
        elif action == "block" and rig.missing():
            i = rng.choice(rig.missing())
            rig.send(Block(rig.tid, i, rig.blocks[i]))
        elif action == "again" and last is not None:
            rig.send(last)  # a duplicate (replayed) symbol
        elif action == "power":
            _power_loss(rig)
    for i in rig.missing():  # the head-end finishes with plain blocks
        rig.send(Block(rig.tid, i, rig.blocks[i]))
    ans = rig.verify()
    old = make_image(COMPONENT, "1.0.0", size=IMAGE)
    if isinstance(ans, Verified):
        assert rig.ep.meter.slot_image(COMPONENT) == rig.image
    else:
        assert forged, f"a clean run must verify, got {ans}"
        assert isinstance(ans, Failed) and ans.code == "digest-mismatch"
        assert rig.ep.meter.slot_image(COMPONENT) == old


def test_a_forged_symbol_on_a_complete_transfer_changes_nothing() -> None:
    rig = Rig()
    rig.blocks_except(set())
    try:
        rig.send(Coded(rig.tid, 3, b"\xff" * 256))
    except AmiupError as ex:  # pragma: no cover - the endpoint must not raise on a multicast
        raise AssertionError(ex) from None
    assert isinstance(rig.verify(), Verified)
    assert rig.ep.meter.slot_image(COMPONENT) == rig.image
