"""The per-meter session against a real meter, in process: no network, messages as bytes."""

from __future__ import annotations

import random

import pytest

from amiup.headend.session import SessionConfig, UnicastSession
from amiup.meter import MemoryStorage, Meter
from amiup.network.endpoint import MeterEndpoint
from amiup.wire import Message, decode, encode
from reqmark import req
from support_network import COMPONENT, T0, make_delivery, make_kit, make_meters


def _drive(session: UnicastSession, ep: MeterEndpoint, now: float, *, drop: float = 0.0,
           dup: float = 0.0, shuffle: bool = False, seed: int = 3, max_steps: int = 20_000) -> float:
    """Exchange messages until the session ends; lost requests are repeated on timeout."""
    rng = random.Random(seed)
    outbox = session.start(now)
    for _ in range(max_steps):
        if session.done:
            return now
        if not outbox:
            now = max(now + 1.0, session.deadline or now)
            ep.meter.tick(now)
            outbox = session.expire(now)
            continue
        if shuffle:
            rng.shuffle(outbox)
        sent: list[Message] = []
        for m in outbox:
            if rng.random() >= drop:
                sent += [m, m] if rng.random() < dup else [m]
        outbox = []
        now += 0.1
        for m in sent:
            for reply in ep.handle(decode(encode(m)), now):
                if rng.random() >= drop:
                    outbox += session.receive(decode(encode(reply)), now)
    raise AssertionError("session did not finish")


@req("SM-2", "UMS-8")
def test_session_delivers_and_reads_back_the_running_version() -> None:
    kit = make_kit()
    [ep] = make_meters(kit, 1)
    delivery, image = make_delivery(kit, [ep.meter_id])
    s = UnicastSession(ep.meter_id, delivery)
    _drive(s, ep, T0)
    assert (s.phase, s.code) == ("done", None)
    assert s.confirmed_at is not None
    assert s.blocks_sent == s.block_count  # nothing sent twice on a clean link
    assert ep.meter.slot_image(COMPONENT) == image


@req("SM-2")
def test_session_survives_loss_duplication_and_reordering() -> None:
    kit = make_kit()
    [ep] = make_meters(kit, 1)
    delivery, image = make_delivery(kit, [ep.meter_id])
    s = UnicastSession(ep.meter_id, delivery, SessionConfig(max_retries=12))
    _drive(s, ep, T0, drop=0.2, dup=0.2, shuffle=True)
    assert s.phase == "done"
    assert ep.meter.slot_image(COMPONENT) == image


@req("SM-2", "SM-9")
def test_power_loss_mid_transfer_resumes_from_missing_blocks() -> None:
    kit = make_kit()
    [ep] = make_meters(kit, 1)
    storage = ep.meter.storage
    delivery, image = make_delivery(kit, [ep.meter_id])
    s = UnicastSession(ep.meter_id, delivery)
    outbox = s.start(T0)
    now = float(T0)
    while s.blocks_sent < s.block_count // 2 or not s.block_count:  # half the image arrives
        now += 0.1
        nxt: list[Message] = []
        for m in outbox:
            for r in ep.handle(m, now):
                nxt += s.receive(r, now)
        outbox = nxt
    held = ep.meter.status(b"", now).components[COMPONENT].received
    assert 0 < held < s.block_count
    ep.meter.power_loss()  # the meter goes dark; RAM is gone
    meter = Meter(storage)
    meter.boot(now + 60)
    ep2 = MeterEndpoint(meter)
    s2 = UnicastSession(ep.meter_id, delivery)
    _drive(s2, ep2, now + 60)
    assert s2.phase == "done"
    assert s2.blocks_sent == s2.block_count - held  # only the missing blocks were sent
    assert meter.slot_image(COMPONENT) == image
    assert isinstance(storage, MemoryStorage)


def test_offline_meter_fails_retriably_after_bounded_retries() -> None:
    kit = make_kit()
    [ep] = make_meters(kit, 1)
    delivery, _ = make_delivery(kit, [ep.meter_id])
    s = UnicastSession(ep.meter_id, delivery, SessionConfig(timeout_s=5, max_retries=3, backoff=2))
    _drive(s, ep, T0, drop=0.999999)
    assert (s.phase, s.code, s.retriable) == ("failed", "timeout", True)


def test_stale_and_duplicated_replies_are_ignored() -> None:
    kit = make_kit()
    [ep] = make_meters(kit, 1)
    delivery, _ = make_delivery(kit, [ep.meter_id])
    s = UnicastSession(ep.meter_id, delivery, SessionConfig(window=4))
    [offer] = s.start(T0)
    [accept] = ep.handle(offer, T0)
    window1 = s.receive(accept, T0)
    assert [type(m).__name__ for m in window1] == ["Block"] * 4 + ["Query"]
    assert s.receive(accept, T0) == []  # a duplicated accept does not resend the window
    for m in window1[:-1]:
        ep.handle(m, T0)
    [missing1] = ep.handle(window1[-1], T0)
    window2 = s.receive(missing1, T0)
    assert len(window2) == 5 and s.blocks_sent == 8
    assert s.receive(missing1, T0) == []  # the answer to the previous query is stale now
    assert s.blocks_sent == 8


@req("SM-4", "SEC-3")
def test_order_for_another_meter_is_refused_and_not_retried() -> None:
    kit = make_kit()
    [ep] = make_meters(kit, 1)
    delivery, _ = make_delivery(kit, ["someone-else"])
    s = UnicastSession(ep.meter_id, delivery)
    _drive(s, ep, T0)
    assert (s.phase, s.code, s.retriable) == ("failed", "order-wrong-target", False)
    assert [a.code for a in ep.alarms()] == ["order-wrong-target"]


def test_deadline_counts_the_airtime_of_what_was_sent() -> None:
    """A window of blocks to a deep meter on a slow cell is not taken for a lost request."""
    kit = make_kit()
    [ep] = make_meters(kit, 1)
    delivery, _ = make_delivery(kit, [ep.meter_id])
    per_byte = 8.0 / 30_000  # a 30 kbps budget
    quick = UnicastSession(ep.meter_id, delivery, SessionConfig(timeout_s=3.0, window=8))
    slow = UnicastSession(ep.meter_id, delivery, SessionConfig(timeout_s=3.0, window=8,
                                                               drain_s_per_byte=per_byte), hops=4)
    for s in (quick, slow):
        [offer] = s.start(T0)
        assert s.deadline is not None
        [accept] = ep.handle(offer, T0)
        window = s.receive(accept, T0 + 1)
        assert [type(m).__name__ for m in window] == ["Block"] * 8 + ["Query"]
    assert quick.deadline == T0 + 1 + 3.0
    on_air = sum(len(encode(m)) + 64 for m in window)
    due, quick_due = slow.deadline, quick.deadline
    assert due is not None and quick_due is not None
    assert due == pytest.approx(T0 + 1 + 3.0 + on_air * 4 * per_byte)
    assert due - quick_due > 8 * 256 * 4 * per_byte  # the blocks take seconds
    # a timeout repeats only the query: the next wait drains just that, with backoff
    [again] = slow.expire(due)
    assert type(again).__name__ == "Query"
    assert slow.deadline == pytest.approx(T0 + 1 + 3.0 + on_air * 4 * per_byte + 6.0
                                          + (len(encode(again)) + 64) * 4 * per_byte)
