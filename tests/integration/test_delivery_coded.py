"""Coded multicast repair and the brief read-back, with real meter agents behind the codec."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from amiup.headend.multicast import CellMulticast, MulticastConfig, Out
from amiup.headend.session import UnicastSession
from amiup.headend.simrun import RunConfig
from amiup.network.endpoint import MeterEndpoint
from amiup.network.sim import Impairments
from amiup.wire import (
    Block,
    Coded,
    GetStatus,
    Message,
    Missing,
    Query,
    Running,
    Verify,
    decode,
    encode,
    encode_bitmap,
)
from amiup.wire.brief import short_id, state_code
from reqmark import req
from support_network import COMPONENT, T0, make_delivery, make_kit, make_meters, make_sim

DAY = 86400.0
Drop = Callable[[str, Message], bool]


def _cell(eps: list[MeterEndpoint], cm: CellMulticast, drop: Drop, sent: list[tuple[str | None, Message]],
          max_steps: int = 200) -> None:
    """Drive ``cm`` in process: every frame reaches every addressed meter unless ``drop``."""
    by_id = {e.meter_id: e for e in eps}
    now = float(T0)
    out: Out = cm.start(now)
    for _ in range(max_steps):
        if cm.done:
            return
        if not out:
            now = max(now + 0.5, cm.next_deadline or now)
            out = cm.expire(now)
            continue
        sent += out
        now += 0.1
        nxt: Out = []
        for dest, msg in out:
            for ep in eps if dest is None else [by_id[dest]]:
                if drop(ep.meter_id, msg):
                    continue
                for reply in ep.handle(decode(encode(msg)), now, multicast=dest is None):
                    nxt += cm.receive(ep.meter_id, decode(encode(reply)), now)
        out = nxt
    raise AssertionError("cell did not finish")


@req("AMI-4", "UMS-8")
def test_clean_cell_sends_each_block_once_and_confirms_by_brief_readback() -> None:
    kit = make_kit()
    eps = make_meters(kit, 6)
    delivery, image = make_delivery(kit, [e.meter_id for e in eps])
    cm = CellMulticast({e.meter_id: 1 + i % 3 for i, e in enumerate(eps)}, delivery)
    sent: list[tuple[str | None, Message]] = []
    _cell(eps, cm, lambda _m, _x: False, sent)
    assert cm.sessions == {} and sorted(cm.confirmed) == sorted(e.meter_id for e in eps)
    k = cm.block_count
    assert (cm.multicast_blocks, cm.unicast_blocks, cm.multicast_coded, cm.unicast_coded) == (k, 0, 0, 0)
    # verify and the brief read-back leave together, as the last two frames of the cell
    verify, ask = sent[-2][1], sent[-1][1]
    assert isinstance(verify, Verify) and isinstance(ask, GetStatus)
    assert ask.brief and not ask.full and len(ask.nonce) == 4 and ask.component == COMPONENT
    assert all(ep.meter.slot_image(COMPONENT) == image for ep in eps)


@req("AMI-4", "SM-2")
def test_coded_symbols_repair_different_losses_with_one_stream() -> None:
    """Each meter loses different blocks; the same multicast symbols repair all of them."""
    kit = make_kit()
    eps = make_meters(kit, 8)
    delivery, image = make_delivery(kit, [e.meter_id for e in eps])
    ids = [e.meter_id for e in eps]

    def drop(meter: str, msg: Message) -> bool:  # meter i loses blocks i, i+8, i+16 ... (8 of 64)
        return isinstance(msg, Block) and msg.index % 8 == ids.index(meter)

    cm = CellMulticast(dict.fromkeys(ids, 2), delivery, MulticastConfig(expected_loss=0.0))
    sent: list[tuple[str | None, Message]] = []
    _cell(eps, cm, drop, sent)
    assert len(cm.confirmed) == 8 and cm.sessions == {}
    assert all(ep.meter.slot_image(COMPONENT) == image for ep in eps)
    # no plain block went out twice: 8 multicast symbols (plus a margin) did all the repair
    assert (cm.multicast_blocks, cm.unicast_blocks) == (cm.block_count, 0)
    coded = [m for d, m in sent if isinstance(m, Coded)]
    assert 8 <= cm.multicast_coded == len(coded) <= 16  # 8 + a margin for the loss seen (1/8)
    assert len({m.seq for m in coded}) == len(coded)  # every symbol fresh
    assert all(ep.coded_dropped == 0 for ep in eps)


@req("AMI-4", "SM-2", "UMS-8")
def test_coded_multicast_at_ten_percent_loss_sends_few_repair_frames() -> None:
    kit = make_kit()
    eps = make_meters(kit, 24)
    delivery, image = make_delivery(kit, [e.meter_id for e in eps])
    cfg = RunConfig(strategy="multicast", multicast=MulticastConfig(expected_loss=0.1))
    _loop, _net, run = make_sim(eps, delivery, imp=Impairments(loss=0.1), config=cfg)
    run.start()
    cm = run.cells["c0"]
    out = run.run(T0 + DAY)
    assert len(run.confirmed) == 24
    assert all(ep.meter.slot_image(COMPONENT) == image for ep in eps)
    k = cm.block_count
    data_frames = cm.multicast_blocks + cm.multicast_coded
    assert data_frames < 1.5 * k  # the per-block repair of before sent ~3x k
    assert cm.multicast_coded > 0
    # every lost block came back from coded symbols: no plain block was ever resent
    assert cm.unicast_blocks == 0 and cm.multicast_blocks == k
    assert sum(o.blocks_sent for o in out.values()) == 0
    assert all(ep.coded_dropped == 0 for ep in eps)
    # most meters were confirmed by the one brief multicast read-back; the rest (a lost
    # verify, get_status or answer) by their own follow-up read-back
    assert len(cm.confirmed) >= 12
    assert set(cm.confirmed) | {m for m, s in cm.sessions.items() if s.confirmed_at} == set(out)


@req("AMI-4", "SM-2")
def test_late_joiner_missing_more_than_a_decoder_holds_gets_plain_blocks() -> None:
    kit = make_kit(image_size=32768)  # 128 blocks: more than the 64 symbols a meter holds
    eps = make_meters(kit, 6)
    delivery, image = make_delivery(kit, [e.meter_id for e in eps])
    victim = eps[4].meter_id
    heard: list[Message] = []

    def drop(meter: str, msg: Message) -> bool:  # the victim is off air until the first query
        if meter != victim:
            return False
        heard.append(msg)
        return not any(isinstance(m, Query) for m in heard)

    cm = CellMulticast({e.meter_id: 1 + i % 3 for i, e in enumerate(eps)}, delivery)
    sent: list[tuple[str | None, Message]] = []
    _cell(eps, cm, drop, sent)
    assert cm.block_count == 128 and len(cm.confirmed) == 6 and cm.sessions == {}
    assert all(ep.meter.slot_image(COMPONENT) == image for ep in eps)
    # it answered the query "unknown transfer", got the offer by unicast, and then every
    # block by unicast plain blocks in the next round (one meter: unicast is cheaper)
    assert [type(m).__name__ for d, m in sent if d == victim][:1] == ["Offer"]
    assert cm.unicast_blocks == 128 and cm.multicast_blocks == 128
    assert [m.index for d, m in sent if d == victim and isinstance(m, Block)] == list(range(128))


def test_running_answer_with_another_nonce_or_version_does_not_confirm() -> None:
    kit = make_kit()
    eps = make_meters(kit, 2)
    delivery, _ = make_delivery(kit, [e.meter_id for e in eps])
    cm = CellMulticast({e.meter_id: 1 for e in eps}, delivery)
    sent: list[tuple[str | None, Message]] = []

    def drop(meter: str, msg: Message) -> bool:  # meter 1 never hears the read-back
        return meter == eps[1].meter_id and isinstance(msg, GetStatus) and msg.brief

    _cell(eps, cm, drop, sent)
    assert list(cm.confirmed) == [eps[0].meter_id]  # meter 1: confirmed by its own session
    assert cm.sessions[eps[1].meter_id].confirmed_at is not None
    cm2 = CellMulticast({e.meter_id: 1 for e in eps}, delivery)
    cm2._nonces, cm2.phase = {b"abcd"}, "verify"
    committed, trial = state_code("committed"), state_code("trial")
    cm2.receive(eps[0].meter_id, Running(b"abce", delivery.version, committed), T0)
    cm2.receive(eps[0].meter_id, Running(b"abcd", "0.9.0", committed), T0)
    cm2.receive(eps[0].meter_id, Running(b"abcd", delivery.version, trial), T0)
    cm2.receive(eps[0].meter_id, Running(b"abcd", delivery.version, 99), T0)  # a newer peer's state
    assert cm2.confirmed == {}
    cm2.receive(eps[0].meter_id, Running(b"abcd", delivery.version, committed), T0)
    assert list(cm2.confirmed) == [eps[0].meter_id]


@req("UMS-8")
def test_follow_up_sessions_start_where_the_readback_left_each_meter() -> None:
    """A meter that missed the verify is verified by unicast straight away; a silent one is
    asked first; and only a few sessions run at once, so their requests do not queue past
    their own timeouts."""
    kit = make_kit()
    eps = make_meters(kit, 8)
    delivery, image = make_delivery(kit, [e.meter_id for e in eps])
    ids = [e.meter_id for e in eps]
    cm = CellMulticast(dict.fromkeys(ids, 3), delivery, MulticastConfig(session_concurrency=3))
    busy: list[int] = []

    def drop(meter: str, msg: Message) -> bool:
        busy.append(sum(not s.done for s in cm.sessions.values()))
        if meter == ids[0]:  # misses the multicast verify, answers the read-back: "received"
            return isinstance(msg, Verify) and cm.phase == "verify"
        return isinstance(msg, GetStatus) and msg.brief  # the rest never hear the read-back

    sent: list[tuple[str | None, Message]] = []
    _cell(eps, cm, drop, sent)
    assert cm.confirmed == {} and all(s.confirmed_at for s in cm.sessions.values())
    assert all(ep.meter.slot_image(COMPONENT) == image for ep in eps)
    at = next(i for i, (d, x) in enumerate(sent) if d is None and isinstance(x, GetStatus))
    first = {m: next(type(x).__name__ for d, x in sent[at:] if d == m) for m in ids}
    assert first == {ids[0]: "Verify", **{m: "GetStatus" for m in ids[1:]}}
    assert max(busy) == 3


@req("UMS-8")
def test_a_meter_that_missed_the_readback_is_confirmed_by_a_named_poll() -> None:
    """The first brief read-back to one meter is lost: a multicast poll naming it (and only
    it) confirms it, without a unicast session."""
    kit = make_kit()
    eps = make_meters(kit, 4)
    delivery, _ = make_delivery(kit, [e.meter_id for e in eps])
    cm = CellMulticast({e.meter_id: 2 for e in eps}, delivery)
    late = eps[3].meter_id
    seen: list[GetStatus] = []

    def drop(meter: str, msg: Message) -> bool:
        if isinstance(msg, GetStatus) and meter == late:
            seen.append(msg)
            return msg.nonce == seen[0].nonce  # both copies of the cell-wide read-back
        return False

    sent: list[tuple[str | None, Message]] = []
    _cell(eps, cm, drop, sent)
    assert sorted(cm.confirmed) == sorted(e.meter_id for e in eps) and cm.sessions == {}
    assert len(seen) == 3 and seen[1] == seen[0]  # the cell's read-back went out twice
    assert cm.polls == 1 and seen[2].meters == short_id(late) and seen[2].nonce != seen[0].nonce


@req("AMI-4", "UMS-8")
def test_gathered_readback_on_the_mesh_confirms_every_meter_for_less_airtime() -> None:
    """60 real meters, 6 depths: the read-back gathered up the routing tree confirms all of
    them and the upgrade takes less airtime than with every meter answering itself."""
    kit = make_kit()
    eps_g, eps_d = make_meters(kit, 60), make_meters(kit, 60)
    airtime = {}
    for name, eps, gather in (("gathered", eps_g, True), ("direct", eps_d, False)):
        delivery, image = make_delivery(kit, [e.meter_id for e in eps])
        _, net, run = make_sim(eps, delivery, config=RunConfig(strategy="multicast", gather=gather))
        run.start()
        run.run(T0 + DAY)
        assert len(run.confirmed) == 60, name
        assert all(ep.meter.slot_image(COMPONENT) == image for ep in eps)
        assert (net.gather_stats.answers > 0) == gather
        airtime[name] = sum(c.airtime_bytes for c in net.cells.values())
        if gather:
            assert net.gather_stats.late < 6  # the head-end's per-depth waits were long enough
            assert all(not cm.sessions for cm in run.cells.values())  # no unicast session needed
    assert airtime["gathered"] < airtime["direct"]


@req("AMI-4", "SM-2", "UMS-8")
def test_a_meter_short_at_verify_is_repaired_in_the_poll_round_without_a_session() -> None:
    """The victim loses three blocks and every NACK query, so the head-end goes to verify
    thinking the cell whole: the victim answers the verify with what it lacks, gets coded
    symbols in the first poll round, and is verified and confirmed by that poll."""
    kit = make_kit()
    eps = make_meters(kit, 5)
    delivery, image = make_delivery(kit, [e.meter_id for e in eps])
    victim = eps[2].meter_id

    def drop(meter: str, msg: Message) -> bool:
        lost = isinstance(msg, Block) and msg.index in (3, 9, 20)
        return meter == victim and (isinstance(msg, Query) or lost)

    cm = CellMulticast({e.meter_id: 1 + i % 3 for i, e in enumerate(eps)}, delivery,
                       MulticastConfig(expected_loss=0.0))
    sent: list[tuple[str | None, Message]] = []
    _cell(eps, cm, drop, sent)
    assert sorted(cm.confirmed) == sorted(e.meter_id for e in eps) and cm.sessions == {}
    assert cm.polls == 1 and all(ep.meter.slot_image(COMPONENT) == image for ep in eps)
    first_verify = next(i for i, (d, m) in enumerate(sent) if isinstance(m, Verify))
    repair = [m for d, m in sent[first_verify:] if isinstance(m, Coded)]
    assert 3 <= len(repair) <= 6 and cm.unicast_blocks == 0  # its need plus a margin, coded
    poll = next(m for d, m in sent[first_verify:] if isinstance(m, GetStatus) and m.meters)
    assert poll.meters == short_id(victim)


def test_a_meter_too_short_to_repair_in_a_poll_gets_a_session() -> None:
    """Short by more than ``poll_repair_max`` symbols: a unicast session resumes it."""
    kit = make_kit()
    eps = make_meters(kit, 3)
    delivery, image = make_delivery(kit, [e.meter_id for e in eps])
    victim = eps[0].meter_id

    def drop(meter: str, msg: Message) -> bool:
        return meter == victim and cm.phase == "rounds" and (
            isinstance(msg, Query) or (isinstance(msg, Block) and msg.index < 12))

    cm = CellMulticast({e.meter_id: 2 for e in eps}, delivery,
                       MulticastConfig(expected_loss=0.0, poll_repair_max=8))
    _cell(eps, cm, drop, [])
    assert sorted(cm.confirmed) == sorted(e.meter_id for e in eps if e.meter_id != victim)
    assert list(cm.sessions) == [victim] and cm.sessions[victim].confirmed_at is not None
    assert all(ep.meter.slot_image(COMPONENT) == image for ep in eps)


@req("AMI-4", "UMS-8")
def test_two_meters_sharing_a_short_id_are_confirmed_by_name_never_by_each_other() -> None:
    """Their gathered answers cannot be told apart, so the collector drops them; the named
    poll (answered straight from each meter) confirms both."""
    seen: dict[bytes, str] = {}
    i = 0
    while True:  # a birthday search over 4-byte short ids: ~80k hashes
        m = f"meter-{i:07d}"
        if short_id(m) in seen:
            pair = (seen[short_id(m)], m)
            break
        seen[short_id(m)] = m
        i += 1
    kit = make_kit()
    eps = make_meters(kit, 12, serials=pair)
    delivery, image = make_delivery(kit, [e.meter_id for e in eps])
    _, net, run = make_sim(eps, delivery, config=RunConfig(strategy="multicast", gather=True))
    run.start()
    cm = run.cells["c0"]
    run.run(T0 + DAY)
    assert sorted(run.confirmed) == sorted(e.meter_id for e in eps)
    assert all(ep.meter.slot_image(COMPONENT) == image for ep in eps)
    # both dropped (one entry, or two: relays merge a short id seen twice into one)
    assert net.gather_stats.unresolved >= 1 and net.gather_stats.answers == 10
    assert cm.polls >= 1 and not cm.sessions


def test_a_late_nack_is_not_taken_for_a_verify_answer() -> None:
    """A round's ``missing`` (its query's seq) that arrives after the verify went out says
    nothing about the verify: only a seq-0 ``missing`` marks a meter short."""
    kit = make_kit()
    eps = make_meters(kit, 2)
    delivery, _ = make_delivery(kit, [e.meter_id for e in eps])
    cm = CellMulticast({e.meter_id: 1 for e in eps}, delivery)
    cm.transfer, cm.block_count, cm.phase = 7, 16, "verify"
    bitmap = encode_bitmap([3, 4], 16)
    cm.receive(eps[0].meter_id, Missing(7, 16, bitmap, 1), T0)  # the NACK of round 1, late
    assert cm._short == {}
    cm.receive(eps[0].meter_id, Missing(7, 16, bitmap, 0, 1), T0)  # the verify's answer
    assert cm._short == {eps[0].meter_id: ({3, 4}, 1)}


@req("SM-2", "UMS-8")
def test_a_resume_refused_as_replayed_reads_back_and_confirms() -> None:
    """The meter finished while the head-end thought it short (an answer lost): the
    re-offer of the same order is refused ``order-replayed``; the session reads back and
    confirms instead of failing. A fresh session (no multicast behind it) still fails."""
    kit = make_kit()
    eps = make_meters(kit, 2)
    delivery, image = make_delivery(kit, [e.meter_id for e in eps])
    cm = CellMulticast({e.meter_id: 1 for e in eps}, delivery)
    _cell(eps, cm, lambda _m, _x: False, [])
    assert len(cm.confirmed) == 2
    ep = eps[0]
    for resumed, want in ((True, None), (False, "order-replayed")):
        s = UnicastSession(ep.meter_id, delivery, hops=1)
        if resumed:
            s.transfer, s.block_size, s.block_count = cm.transfer, cm.block_size, cm.block_count
        now, out = float(T0 + 100), s.start(float(T0 + 100), at="offer")
        while out:
            now += 0.1
            out = [m for x in out for r in ep.handle(decode(encode(x)), now)
                   for m in s.receive(decode(encode(r)), now)]
        assert s.done and s.code == want and (s.confirmed_at is not None) == resumed
    assert ep.meter.slot_image(COMPONENT) == image


@req("AMI-4", "SM-2", "UMS-8")
@pytest.mark.parametrize("seed", [3, 9])
def test_a_cell_at_20_percent_loss_confirms_every_meter(seed: int) -> None:
    """Heavy loss mixes every path (late NACKs, lost answers, short meters, polls,
    sessions): every meter still ends confirmed with the exact image. Seeds 3 and 9 once
    failed meters with order-replayed (a late NACK taken for a verify answer)."""
    kit = make_kit()
    eps = make_meters(kit, 24)
    delivery, image = make_delivery(kit, [e.meter_id for e in eps])
    _, _net, run = make_sim(eps, delivery, imp=Impairments(loss=0.2),
                            config=RunConfig(strategy="multicast"), seed=seed)
    run.start()
    out = run.run(T0 + DAY)
    assert {m: o.code for m, o in out.items() if o.confirmed_at is None} == {}
    assert all(ep.meter.slot_image(COMPONENT) == image for ep in eps)


def test_a_short_meter_whose_readback_was_lost_is_named_once() -> None:
    """Short at verify and silent too (its ``running`` lost): one name in the poll."""
    kit = make_kit()
    eps = make_meters(kit, 3)
    delivery, image = make_delivery(kit, [e.meter_id for e in eps])
    victim = eps[1].meter_id
    polls: list[GetStatus] = []

    def drop(meter: str, msg: Message) -> bool:
        if isinstance(msg, GetStatus) and msg.meters:
            polls.append(msg)
        if meter != victim:
            return False
        lost = isinstance(msg, Block) and msg.index in (5, 6)
        return isinstance(msg, Query) or lost or (isinstance(msg, GetStatus) and not msg.meters)

    cm = CellMulticast({e.meter_id: 2 for e in eps}, delivery, MulticastConfig(expected_loss=0.0))
    _cell(eps, cm, drop, [])
    assert sorted(cm.confirmed) == sorted(e.meter_id for e in eps) and cm.sessions == {}
    assert polls[0].meters == short_id(victim)  # named once, not twice
    assert all(ep.meter.slot_image(COMPONENT) == image for ep in eps)
