"""Coded repair on the meter: RLNC symbols fill dropped blocks through the real meter path.

A real provisioned meter behind ``MeterEndpoint``; symbols come from the head-end's
``fec.Encoder`` and cross the real wire codec. Small images (40 blocks of 256 bytes, the last
one short) keep each test well under a second.
"""

from __future__ import annotations

import random

from amiup.meter import MemoryStorage, Meter, PowerLoss, make_image
from amiup.network.endpoint import MeterEndpoint
from amiup.wire import (
    Block,
    Coded,
    Failed,
    GetStatus,
    Missing,
    Query,
    Reject,
    Running,
    Status,
    Verified,
    Verify,
    decode_bitmap,
    encode,
)
from amiup.wire.brief import names, state_code
from reqmark import req
from support_coded import BS, IMAGE, Rig
from support_network import COMPONENT


def _drop(n: int, share: float, rng: random.Random, *, keep_last: bool = False) -> set[int]:
    pool = range(n - 1) if keep_last else range(n)
    return set(rng.sample(pool, round(n * share)))


@req("AMI-4")
def test_symbols_fill_a_fifth_of_dropped_blocks_and_the_image_is_bit_exact() -> None:
    rig = Rig()
    dropped = _drop(rig.n, 0.2, random.Random(4))
    rig.blocks_except(dropped)
    assert rig.missing() == sorted(dropped)
    rig.ep.meter.pop_events()
    sent = rig.feed_until_complete(0, len(dropped) + 8)
    assert len(dropped) <= sent <= len(dropped) + 3  # each extra symbol fails with p ~ 1/256
    assert rig.state() == "received"  # exactly as if the blocks had arrived
    assert [e.kind for e in rig.ep.meter.pop_events()] == ["received"]
    assert rig.query().bitmap == bytes(len(rig.query().bitmap))
    for i in sorted(dropped):
        assert rig.ep.meter.stored_block(rig.tid, i) == rig.blocks[i]  # last one trimmed
    assert isinstance(rig.verify(), Verified)
    assert rig.ep.meter.slot_image(COMPONENT) == rig.image
    assert rig.state() == "committed"


@req("AMI-4")
def test_missing_have_counts_held_independent_symbols() -> None:
    rig = Rig()
    dropped = {3, 5, 8, 13, 21, 34, 39}
    rig.blocks_except(dropped)
    assert (rig.query().have, rig.query().need) == (0, 7)  # no decoder yet
    for seq in range(4):
        rig.send(rig.symbol(seq))
    rig.send(rig.symbol(2))  # a repeat adds nothing
    ans = rig.query()
    assert (ans.have, ans.need) == (4, 3)
    assert decode_bitmap(ans.bitmap, ans.block_count) == sorted(dropped)  # nothing stored yet
    rig.send(Block(rig.tid, 21, rig.blocks[21]))  # a plain repair block counts as well
    assert (rig.query().have, rig.query().need) == (4, 2)
    [mc] = rig.send(Query(rig.tid, 8))  # a multicast query: answered only while missing
    assert isinstance(mc, Missing) and mc.have == 4
    assert rig.feed_until_complete(100, 6) >= 2
    assert rig.send(Query(rig.tid, 9)) == []
    assert isinstance(rig.verify(), Verified)
    assert rig.ep.meter.slot_image(COMPONENT) == rig.image


@req("AMI-4")
def test_ram_bound_then_plain_blocks_make_the_held_symbols_enough() -> None:
    rig = Rig(max_pending=4)
    dropped = {0, 9, 17, 25, 33, 39}
    rig.blocks_except(dropped)
    for seq in range(10):
        rig.send(rig.symbol(seq))
    assert (rig.query().have, rig.query().need) == (4, 2)  # held no more than the bound
    rig.send(Block(rig.tid, 9, rig.blocks[9]))
    assert rig.missing() == [0, 17, 25, 33, 39]
    rig.send(Block(rig.tid, 25, rig.blocks[25]))  # now 4 unknowns, 4 held: solved at once
    assert rig.missing() == []
    assert rig.state() == "received"
    assert isinstance(rig.verify(), Verified)
    assert rig.ep.meter.slot_image(COMPONENT) == rig.image


@req("AMI-4")
def test_symbols_nobody_needs_are_ignored_without_an_answer() -> None:
    rig = Rig()
    other = Coded(rig.tid + 1, 0, bytes(BS))
    assert rig.send(other) == [] and rig.send(other, multicast=False) == []
    rig.blocks_except(set())
    assert rig.state() == "received"
    assert rig.send(rig.symbol(0)) == [] and rig.send(rig.symbol(1), multicast=False) == []
    assert rig.ep._decoders == {}
    assert isinstance(rig.verify(), Verified)
    assert rig.send(rig.symbol(2)) == []  # past receiving: not ours any more


@req("AMI-4")
def test_symbol_of_the_wrong_length_is_malformed_and_refused_only_in_unicast() -> None:
    rig = Rig()
    rig.blocks_except({1, 2})
    short = Coded(rig.tid, 0, bytes(BS // 2))
    assert rig.send(short) == []
    [rej] = rig.send(short, multicast=False)
    assert isinstance(rej, Reject) and rej.code == "malformed-message"
    assert rig.query().have == 0
    assert rig.feed_until_complete(0, 6) >= 2
    assert isinstance(rig.verify(), Verified)


@req("SM-2", "AMI-4")
def test_power_loss_mid_decoding_loses_only_the_symbols_in_ram() -> None:
    rig = Rig()
    dropped = _drop(rig.n, 0.2, random.Random(7))
    rig.blocks_except(dropped)
    for seq in range(len(dropped) - 1):  # one short of solving
        rig.send(rig.symbol(seq))
    assert rig.query().have == len(dropped) - 1
    storage = rig.ep.meter.storage
    rig.ep.meter.power_loss()
    meter = Meter(storage)
    meter.boot(rig.now + 60)
    rig.ep, rig.now = MeterEndpoint(meter), rig.now + 60
    assert rig.missing() == sorted(dropped)  # nothing half-decoded reached storage
    assert rig.query().have == 0
    rig.feed_until_complete(1000, len(dropped) + 8)  # fresh symbols after the restart
    assert isinstance(rig.verify(), Verified)
    assert meter.slot_image(COMPONENT) == rig.image


@req("SM-2", "AMI-4")
def test_power_loss_while_storing_solved_blocks_keeps_those_stored() -> None:
    rig = Rig()
    dropped = {2, 4, 6, 8, 10}
    rig.blocks_except(dropped)
    for seq in range(len(dropped) - 1):
        rig.send(rig.symbol(seq))
    storage = rig.ep.meter.storage
    assert isinstance(storage, MemoryStorage)
    storage.arm_power_loss(2)  # two solved blocks are written, the third write never happens
    try:
        rig.send(rig.symbol(99))
        raise AssertionError("the power loss did not strike")
    except PowerLoss:
        storage.disarm()
    meter = Meter(storage)
    meter.boot(rig.now + 60)
    rig.ep, rig.now = MeterEndpoint(meter), rig.now + 60
    assert rig.missing() == [6, 8, 10]  # solved blocks come out in index order
    for i in rig.missing():  # finish with plain blocks this time
        rig.send(Block(rig.tid, i, rig.blocks[i]))
    assert isinstance(rig.verify(), Verified)
    assert meter.slot_image(COMPONENT) == rig.image


@req("AMI-4", "SM-3")
def test_symbol_not_matching_its_seq_fails_verification_and_never_installs() -> None:
    rig = Rig()
    dropped = _drop(rig.n, 0.2, random.Random(11), keep_last=True)
    rig.blocks_except(dropped)
    rig.send(Coded(rig.tid, 0, rig.encoder.symbol(500)))  # data of another symbol
    rig.feed_until_complete(1, len(dropped) + 8)
    assert rig.state() == "received"
    ans = rig.verify()
    assert isinstance(ans, Failed) and ans.code == "digest-mismatch"
    comp = rig.ep.meter.status(b"", rig.now).components[COMPONENT]
    assert (comp.running_version, comp.staged_version, comp.state) == ("1.0.0", None, "failed")
    assert rig.ep.meter.slot_image(COMPONENT) == make_image(COMPONENT, "1.0.0", size=IMAGE)


@req("AMI-4", "SM-3")
def test_bad_symbol_caught_by_the_last_blocks_padding_stores_nothing() -> None:
    rig = Rig()
    last = rig.n - 1
    rig.blocks_except({last})
    rig.send(Coded(rig.tid, 0, rig.encoder.symbol(1)))  # solves garbage into the padding
    assert rig.missing() == [last] and rig.ep.coded_dropped == 1
    assert rig.query().have == 0  # spent: the head-end sees the need again
    rig.feed_until_complete(2, 4)
    assert isinstance(rig.verify(), Verified)
    assert rig.ep.meter.slot_image(COMPONENT) == rig.image


@req("AMI-4", "SM-1")
def test_brief_status_answers_running_version_and_state() -> None:
    rig = Rig()
    ask = GetStatus(b"\x00\x2a", COMPONENT, brief=True)
    [ans] = rig.send(ask)  # multicast read-back: every meter answers, briefly
    assert ans == Running(b"\x00\x2a", "1.0.0", state_code("receiving"))
    assert rig.send(ask) == []  # a repeated copy of the same cell read-back: answered once
    [long] = rig.send(GetStatus(b"\x00\x2a", COMPONENT), multicast=False)
    assert isinstance(long, Status)
    assert len(encode(ans)) < len(encode(long))
    rig.blocks_except(set())
    assert isinstance(rig.verify(), Verified)
    ask = GetStatus(b"\x00\x2b", COMPONENT, brief=True)
    assert rig.send(ask) == [Running(b"\x00\x2b", "1.1.0", state_code("committed"))]
    [rej] = rig.send(GetStatus(b"\x01", "toaster", brief=True), multicast=False)
    assert isinstance(rej, Reject) and rej.code == "invalid-argument"


@req("UMS-8")
def test_a_named_poll_is_answered_only_by_the_meters_it_names() -> None:
    rig = Rig()
    me = rig.ep.meter_id
    assert rig.send(GetStatus(b"\x07", COMPONENT, brief=True, meters=names(["someone-else"]))) == []
    [ans] = rig.send(GetStatus(b"\x07", COMPONENT, brief=True, meters=names(["someone-else", me])))
    assert ans == Running(b"\x07", "1.0.0", state_code("receiving"))


@req("AMI-4", "SM-2")
def test_a_cell_verify_to_a_short_meter_is_answered_with_what_it_lacks() -> None:
    """Multicast verify before the image is whole: ``missing`` with the held symbols
    counted (the head-end repairs it in its next poll); unicast keeps ``failed``."""
    rig = Rig()
    rig.blocks_except({1, 4, 6})
    assert rig.send(rig.symbol(0)) == []  # one symbol held towards the three gaps
    [ans] = rig.send(Verify(rig.tid, COMPONENT))  # the cell's verify
    assert isinstance(ans, Missing) and ans.seq == 0 and (ans.have, ans.need) == (1, 2)
    assert decode_bitmap(ans.bitmap, rig.n) == [1, 4, 6]
    [fail] = rig.send(Verify(rig.tid, COMPONENT), multicast=False)
    assert isinstance(fail, Failed) and fail.code == "transfer-incomplete"
    assert rig.state() == "receiving"  # nothing was built or lost
    rig.send(rig.symbol(1))
    rig.send(rig.symbol(2))
    assert rig.send(Verify(rig.tid, COMPONENT)) == []  # whole now: verified, silently
    assert rig.ep.meter.slot_image(COMPONENT) == rig.image
