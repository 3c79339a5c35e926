"""Gathered read-back: merge/split, the relay node's timing, and the mesh in the simulator."""

from __future__ import annotations

import pytest

from amiup.errors import AmiupError
from amiup.headend.readback import gather_waits, level_airtime
from amiup.network.events import EventLoop
from amiup.network.gather import MAX_BUFFERED, GatherNode, merge, split
from amiup.network.profiles import PROFILES
from amiup.network.sim import Impairments, SimNetwork
from amiup.network.sizes import frame_bytes
from amiup.wire import DEFAULT_LIMITS, Gathered, GatherGroup, Running, decode, encode
from amiup.wire.brief import roster, short_id, state_code
from amiup.wire.messages import MAX_GATHERED
from reqmark import req

NONCE = b"\x01\x02\x03\x04"
RF = PROFILES["rf-mesh"]


def _ans(version: str = "1.2.4", state: str = "committed", nonce: bytes = NONCE) -> Running:
    return Running(nonce, version, state_code(state))


def _ids(*meters: str) -> dict[bytes, str | None]:
    """A collector's roster of ``meters``."""
    return roster(meters)


def _collision() -> tuple[str, str]:
    """Two meter ids with the same 4-byte short id (a birthday search: ~80k hashes)."""
    seen: dict[bytes, str] = {}
    i = 0
    while True:
        m = f"meter-{i:07d}"
        s = short_id(m)
        if s in seen:
            return seen[s], m
        seen[s] = m
        i += 1


# ---------------------------------------------------------------- merge / split
@req("AMI-4", "UMS-8")
def test_merge_split_round_trip_groups_by_version_and_state() -> None:
    meters = [f"m{i:03d}" for i in range(30)]
    answers = [(m, _ans() if i % 3 else _ans("1.2.3", "failed")) for i, m in enumerate(meters)]
    frames = merge((short_id(m), a) for m, a in answers)
    assert len(frames) == 1 and len(frames[0].groups) == 2  # one frame, one group per outcome
    back = [a for f in frames for a in split(decode(encode(f)), _ids(*meters))]  # type: ignore[arg-type]
    assert sorted(back, key=lambda a: a[0]) == sorted(answers, key=lambda a: a[0])
    assert sorted(split(frames[0], _ids(*meters[:10]))) == sorted(answers[:10])  # others: unknown


@req("AMI-4", "UMS-8")
def test_merge_caps_frames_at_512_meters_and_at_the_message_size() -> None:
    meters = [f"m{i:05d}" for i in range(1300)]
    answers = [(short_id(m), _ans() if i % 2 else _ans("1.2.3", "failed")) for i, m in enumerate(meters)]
    frames = merge(answers)
    assert [sum(g.count for g in f.groups) for f in frames] == [512, 512, 276]
    assert MAX_GATHERED == 512
    for f in frames:  # 512 short ids, in two groups, fit well inside one message
        data = encode(f)
        assert len(data) <= DEFAULT_LIMITS.max_message // 4 and decode(data) == f
    assert {m for f in frames for m, _ in split(f, _ids(*meters))} == set(meters)
    with pytest.raises(AmiupError):
        merge(answers, cap=MAX_GATHERED + 1)
    # every meter a version of its own, 200 characters long: frames split by size, not count
    odd = [(short_id(m), _ans("9." * 99 + f"{i:02d}")) for i, m in enumerate(meters[:500])]
    frames = merge(odd)
    assert len(frames) > 5
    for f in frames:
        data = encode(f)
        assert len(data) <= DEFAULT_LIMITS.max_message and decode(data) == f
    assert sum(len(f.answers()) for f in frames) == 500


@req("AMI-4", "UMS-8")
def test_two_meters_sharing_a_short_id_are_dropped_not_confused() -> None:
    a, b = _collision()
    assert short_id(a) == short_id(b) and a != b
    cell = _ids(a, b, "m-1")
    assert cell[short_id(a)] is None  # ambiguous in this cell
    (frame,) = merge([(short_id(a), _ans()), (short_id("m-1"), _ans())])
    assert split(frame, cell) == [("m-1", _ans())]  # never credited to the wrong meter
    assert split(frame, _ids(a, "m-1")) == [(a, _ans()), ("m-1", _ans())]  # alone: resolved


def test_merge_keeps_one_answer_per_meter_and_nonce() -> None:
    other = b"\x09"
    a, b = short_id("a"), short_id("b")
    frames = merge([(a, _ans()), (a, _ans("9.9.9")), (a, _ans(nonce=other)), (b, _ans())])
    got = sorted((f.nonce, m, r.running) for f in frames for m, r in split(f, _ids("a", "b")))
    assert got == sorted([(other, "a", "1.2.4"), (NONCE, "a", "1.2.4"), (NONCE, "b", "1.2.4")])


# ---------------------------------------------------------------- one node
@req("AMI-4", "UMS-8")
def test_deeper_node_flushes_first_and_parent_merges_it() -> None:
    parent, kid = GatherNode("p", 2, 4), GatherNode("k", 3, 4)
    # the request's waits per depth: depth 2 waits 2 s, depth 3 1 s
    assert parent.own(_ans(), 0.0, 2.0) == [] and kid.own(_ans(), 0.0, 1.0) == []
    assert (kid.flush_at, parent.flush_at) == (1.0, 2.0)  # deeper first
    assert kid.flush(0.9) == []  # not before its time
    up = kid.flush(1.0)
    assert kid.flush(1.5) == []  # never twice
    assert parent.child(up[0], 1.1) == []  # merged, not forwarded
    (frame,) = parent.flush(2.0)
    assert sorted(m for m, _ in split(frame, _ids("k", "p"))) == ["k", "p"]


@req("AMI-4", "UMS-8")
def test_late_child_entries_are_forwarded_at_once_not_lost() -> None:
    node = GatherNode("p", 1, 3)
    node.own(_ans(), 0.0, 0.5)
    node.flush(1.0)
    late = Gathered(NONCE, merge([(short_id("k1"), _ans()), (short_id("k2"), _ans())])[0].groups)
    assert node.child(late, 1.2) == [late] and node.forwarded == 1
    stranger = Gathered(b"\x07", late.groups)  # another read-back: not mixed in, passed on
    assert node.child(stranger, 1.3) == [stranger]


def test_a_node_buffer_is_bounded_and_the_overflow_goes_up_at_once() -> None:
    node = GatherNode("p", 1, 3)
    node.own(_ans(), 0.0, 1.0)
    sent = []
    for k in range(9):  # 9 x 512 child entries against a buffer of 8 x 512
        frame = merge([(short_id(f"k{k}-{i}"), _ans()) for i in range(512)])[0]
        sent += node.child(frame, 0.1)
    # the buffer is full (its own answer took one slot): 512 + 1 child entries went up at once
    assert node.buffered == MAX_BUFFERED and sum(len(f.answers()) for f in sent) == 512 + 1
    assert sum(len(f.answers()) for f in node.flush(2.0)) == MAX_BUFFERED


def test_new_nonce_discards_stale_buffer_and_known_children_flush_early() -> None:
    k, j = short_id("k"), short_id("j")
    node = GatherNode("p", 1, 4, children=frozenset({k}))
    node.own(_ans(nonce=b"\x01"), 0.0, 1.0)
    assert node.child(merge([(k, _ans(nonce=b"\x01"))])[0], 0.1) != []  # all children in
    node = GatherNode("p", 1, 4, children=frozenset({k, j}))
    node.own(_ans(nonce=b"\x01"), 0.0, 1.0)
    assert node.child(merge([(k, _ans(nonce=b"\x01"))])[0], 0.1) == []  # "j" still out
    node.own(_ans(nonce=b"\x02"), 0.5, 3.0)  # a new read-back
    assert node.discarded == 2 and node.buffered == 1 and node.flush_at == 3.5
    leaf = GatherNode("l", 2, 4, children=frozenset())
    assert leaf.own(_ans(), 0.0, 1.0) == []  # a leaf keeps its slot: levels stay in order
    with pytest.raises(AmiupError):
        leaf.own(_ans(), 0.0, -1.0)


# ---------------------------------------------------------------- on the simulated mesh
def _mesh(n: int = 200, imp: Impairments | None = None, seed: int = 4) -> tuple[EventLoop, SimNetwork]:
    """``n`` meters in one rf-mesh cell at depths 1..6 round robin (as tests/support_network)."""
    loop = EventLoop()
    net = SimNetwork(loop, RF, imp, seed=seed)
    for i in range(n):
        net.add_meter(f"m{i:05d}", "c0", 1 + i % 6, lambda data, multicast: None)
    net.build_tree(seed)
    return loop, net


def _answer_of(mid: str) -> Running:
    return _ans("1.2.4" if int(mid[1:]) % 10 else "1.2.3", "committed" if int(mid[1:]) % 10 else "failed")


def _waits(net: SimNetwork) -> tuple[float, ...]:
    """The head-end's per-depth waits for this cell (amiup.headend.readback), in seconds."""
    one = Gathered(NONCE, (GatherGroup("1.2.4", 8, short_id("m00000")),))
    hops = net.cells["c0"].hops.values()
    ms = gather_waits(hops, frame_bytes(len(encode(one)), RF), 4, 8.0 / RF.c_eff_bps, RF.hop_latency_s)
    return tuple(w / 1000.0 for w in ms)


def _readback(loop: EventLoop, net: SimNetwork, *, gathered: bool) -> list[tuple[str, Running]]:
    """Every meter answers as the get_status multicast reaches it (``hops x latency``)."""
    got: list[tuple[str, Running]] = []

    def uplink(mid: str, data: bytes, relayed: bool) -> None:
        msg = decode(data)
        assert isinstance(msg, Running) and relayed == gathered
        got.append((mid, msg))

    net.on_uplink(uplink)
    cell = net.cells["c0"]
    waits = _waits(net)
    for mid in cell.meters:
        def answer(m: str = mid, a: Running = _answer_of(mid)) -> None:
            if gathered:
                net.gather(m, a, waits)
            else:
                net.up(m, encode(a))

        loop.schedule(cell.hops[mid] * RF.hop_latency_s, answer)
    loop.run()
    return got


@req("AMI-4", "UMS-8")
def test_tree_parents_are_one_level_up() -> None:
    _, net = _mesh(60)
    cell = net.cells["c0"]
    for m in cell.meters:
        parent = cell.parent[m]
        assert (parent is None) == (cell.hops[m] == 1)
        assert parent is None or cell.hops[parent] == cell.hops[m] - 1
        assert cell.hops_up(m) == 1
    assert len({cell.parent[m] for m in cell.meters if cell.hops[m] == 6}) > 3  # spread, not one


@req("AMI-4", "UMS-8")
def test_every_meter_answers_once_through_the_tree_and_airtime_drops() -> None:
    loop, net = _mesh()
    got = _readback(loop, net, gathered=True)
    assert sorted(m for m, _ in got) == net.cells["c0"].meters  # exactly one per meter
    assert all(r == _answer_of(m) for m, r in got)  # each meter's own version and state
    assert net.gather_stats.late == 0 and net.gather_stats.frames == 200
    gathered = net.cells["c0"].airtime["upgrade"]

    loop2, direct_net = _mesh()
    direct = _readback(loop2, direct_net, gathered=False)
    assert len(direct) == 200
    ratio = direct_net.cells["c0"].airtime["upgrade"] / gathered
    print(f"read-back of 200 meters, rf-mesh, depths 1..6: direct / gathered airtime = {ratio:.2f}")
    assert ratio > 2.5
    one = Gathered(NONCE, (GatherGroup("1.2.4", 8, short_id("m00000")),))
    planned = sum(level_airtime(net.cells["c0"].hops.values(), frame_bytes(len(encode(one)), RF), 4).values())
    assert planned == pytest.approx(gathered, rel=0.1)  # the head-end's plan (10% failed: 2 groups)


@req("AMI-4", "UMS-8")
def test_loss_drops_answers_but_never_invents_or_alters_them() -> None:
    loop, net = _mesh(imp=Impairments(loss=0.05, duplicate=0.05, corrupt=0.05))
    got = _readback(loop, net, gathered=True)
    meters = set(net.cells["c0"].meters)
    assert all(m in meters and r == _answer_of(m) for m, r in got)  # real meters, true content
    heard = {m for m, _ in got}
    assert 100 < len(heard) < 200  # a lost frame loses its whole subtree; the rest arrive
    assert net.gather_stats.corrupt > 0  # damaged frames were caught by the check and dropped
    # a duplicated frame may hand an answer up twice (identical, as checked above): the
    # head-end keeps the first answer per meter and nonce and ignores repeats
    assert len(got) >= len(heard)


@req("AMI-4", "UMS-8")
def test_offline_relay_loses_its_subtree_but_not_the_rest() -> None:
    loop, net = _mesh(120)
    cell = net.cells["c0"]
    relay = next(m for m in cell.meters if cell.hops[m] == 2 and m in cell.children())
    below = {relay}
    for _ in range(6):
        below |= {m for m in cell.meters if cell.parent[m] in below}
    net.set_online(relay, False)
    got = _readback(loop, net, gathered=True)
    assert {m for m, _ in got} == set(cell.meters) - below
    assert net.gather_stats.lost_offline > 0


def test_build_tree_skips_an_empty_depth_and_add_meter_checks_parents() -> None:
    loop = EventLoop()
    net = SimNetwork(loop, RF)
    net.add_meter("a", "c0", 1, lambda d, m: None)
    net.add_meter("b", "c0", 3, lambda d, m: None)
    net.build_tree(1)
    cell = net.cells["c0"]
    assert cell.parent["b"] == "a" and cell.hops_up("b") == 2
    net.add_meter("c", "c0", 2, lambda d, m: None, parent="a")
    assert cell.children()["a"] == ["b", "c"]
    with pytest.raises(AmiupError):
        net.add_meter("d", "c0", 1, lambda d, m: None, parent="a")  # not shallower
    with pytest.raises(AmiupError):
        net.add_meter("e", "c9", 2, lambda d, m: None, parent="a")  # another cell
