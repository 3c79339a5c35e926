"""Wire codec: literal bytes, round trips, caps, and fuzzing that only amiup errors escape."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amiup.errors import AmiupError
from amiup.meter.agent import STATES as AGENT_STATES
from amiup.wire import (
    Accept,
    Activate,
    Alarm,
    Block,
    Cancel,
    Coded,
    ComponentStatus,
    Failed,
    Gathered,
    GatherGroup,
    GetStatus,
    Message,
    Missing,
    Offer,
    Query,
    Reject,
    Result,
    Running,
    Status,
    Verified,
    Verify,
    WireLimits,
    decode,
    decode_bitmap,
    encode,
    encode_bitmap,
)
from amiup.wire.brief import STATES as BRIEF_STATES
from amiup.wire.brief import names, roster, short_id, state_code, state_name, unpack
from reqmark import req

SAMPLES: list[Message] = [
    GetStatus(b"\x01\x02"),
    Status("m-1", b"n", 1700000000,
           (ComponentStatus("ami_app", "1.0.0", "1.1.0", "verified", 9, 4, 4, 3),), 5),
    Offer(b"order", b"signed header", 512),
    Accept(9, "ami_app", 512, 10, encode_bitmap([0, 9], 10)),
    Reject(9, "wrong-model", "model X"),
    Block(9, 3, b"data"),
    Query(9),
    Missing(9, 10, encode_bitmap([], 10)),
    Verify(9, "ami_app"),
    Verified(9, b"\x00" * 32),
    Failed(9, "digest-mismatch"),
    Activate(9, "ami_app", 1700000100),
    Activate(9, "ami_app"),
    Cancel(9, "ami_app"),
    Result(9, "ami_app", "1.1.0", "committed"),
    Alarm("bad-signature", "offer", 17),
    GetStatus(b"\x01\x02\x03\x04", "ami_app", brief=True),
    Missing(9, 10, encode_bitmap([2, 7], 10), 4, 1),
    Coded(9, 0, b"\x00" * 16),
    Running(b"\x01\x02\x03\x04", "1.1.0", 8),
    GetStatus(b"\x01\x02\x03\x04", "ami_app", brief=True, gather_ms=(9000, 6000, 3000, 0)),
    GetStatus(b"\x01\x02", "ami_app", brief=True, meters=names(["m-7", "m-9"])),
    Gathered(b"\x01\x02\x03\x04", (GatherGroup("1.1.0", 8, names(["m-1", "m-2"])),
                                      GatherGroup("1.0.0", 9, names(["m-3"])))),
]


@req("SEC-2")
def test_literal_bytes_of_query_block_and_activate() -> None:
    # [3, 7, transfer 1, seq 0, crc32(h'8403070100') = 0x8ca56965]
    assert encode(Query(1)) == bytes.fromhex("85030701001a8ca56965")
    # [3, 12, 1, "ami_app", null, crc32(...)]
    assert encode(Activate(1, "ami_app")) == bytes.fromhex("86030c0167616d695f617070f61ad7674a83")
    # [3, 6, transfer 7, index 3, h'616263', crc32(h'850306070343616263')]
    assert encode(Block(7, 3, b"abc")) == bytes.fromhex("8603060703436162631a3ef5461c")
    assert decode(bytes.fromhex("8603060703436162631a3ef5461c")) == Block(7, 3, b"abc")
    assert zlib.crc32(bytes.fromhex("8403070100")) == 0x8CA56965
    # [3, 17, h'01020304', "1.2.4", 8 (committed), crc]: the 20-byte cell read-back answer
    running = bytes.fromhex("860311440102030465312e322e34081a41a3a034")
    assert encode(Running(b"\x01\x02\x03\x04", "1.2.4", state_code("committed"))) == running
    assert len(running) == 20


@pytest.mark.parametrize("version", [1, 2])
def test_an_older_version_message_is_refused(version: int) -> None:
    # 1: before coded repair; 2: read-back answers with meter ids and state names
    body = bytes([0x84, version, 0x07, 0x01, 0x00])  # [version, 7, 1, 0]
    old = bytes([0x85, version, 0x07, 0x01, 0x00, 0x1A]) + zlib.crc32(body).to_bytes(4, "big")
    with pytest.raises(AmiupError, match=f"unsupported wire version {version}"):
        decode(old)


def test_missing_need_counts_held_symbols() -> None:
    assert Missing(9, 10, encode_bitmap([2, 7, 8], 10), 1, have=2).need == 1
    with pytest.raises(AmiupError):
        Missing(9, 10, encode_bitmap([2], 10), 1, have=11)
    with pytest.raises(AmiupError):
        GetStatus(b"n", "", brief=True)  # brief names one component
    with pytest.raises(AmiupError):
        GetStatus(b"n", "ami_app", full=True, brief=True)
    with pytest.raises(AmiupError):
        GetStatus(b"n", "ami_app", gather_ms=(100,))  # only a brief read-back is gathered


def test_gathered_answers_split_back_per_meter() -> None:
    g = Gathered(b"n", (GatherGroup("1.1.0", 8, names(["m-1", "m-2"])),
                        GatherGroup("1.0.0", 9, names(["m-3"]))))
    assert [(m, r.running, state_name(r.state)) for m, r in g.answers()] == [
        (short_id("m-1"), "1.1.0", "committed"), (short_id("m-2"), "1.1.0", "committed"),
        (short_id("m-3"), "1.0.0", "reverted")]
    for bad in ((), (GatherGroup("1.1.0", 8, names(f"m-{i}" for i in range(300))),) * 2):
        with pytest.raises(AmiupError):
            Gathered(b"n", bad)
    for ids in (b"", b"\x01\x02\x03", bytes(4 * 513)):  # empty, not whole ids, over the cap
        with pytest.raises(AmiupError):
            GatherGroup("1.1.0", 8, ids)
    with pytest.raises(AmiupError):
        GetStatus(b"n", "ami_app", brief=True, meters=b"\x01\x02")
    with pytest.raises(AmiupError):
        Running(b"n", "1.1.0", 256)


def test_short_ids_and_state_codes() -> None:
    assert short_id("meter-000001") == short_id("meter-000001") != short_id("meter-000002")
    assert len(short_id("m")) == 4 and unpack(names(["a", "b"])) == [short_id("a"), short_id("b")]
    assert [state_name(state_code(s)) for s in AGENT_STATES] == list(AGENT_STATES)
    assert BRIEF_STATES == AGENT_STATES  # the wire codes are the agent's states, in order
    assert state_name(200) == "unknown-200"
    with pytest.raises(AmiupError):
        state_code("dancing")
    with pytest.raises(AmiupError):
        unpack(b"\x00" * 5)
    assert roster(["m-1", "m-2", "m-1"]) == {short_id("m-1"): "m-1", short_id("m-2"): "m-2"}


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_every_message_round_trips(msg: Message) -> None:
    assert decode(encode(msg)) == msg


@req("SEC-2")
def test_damaged_block_is_refused_by_the_message_check() -> None:
    data = bytearray(encode(Block(7, 3, b"abcdefgh")))
    data[8] ^= 0x01  # inside the payload: still well-formed CBOR
    with pytest.raises(AmiupError) as ex:
        decode(bytes(data))
    assert ex.value.code == "malformed-message"


@pytest.mark.parametrize(
    "hexdata",
    [
        "",  # empty
        "8201",  # too short
        "84090701" + "1a" + zlib.crc32(bytes.fromhex("83090701")).to_bytes(4, "big").hex(),  # version
        "84026301" + "1a" + zlib.crc32(bytes.fromhex("83026301")).to_bytes(4, "big").hex(),  # tag
        "85020701001a34190e01",  # wrong check
        "8301071800",  # non-shortest integer
        "9f010701ff",  # indefinite array
        "a10101",  # map
        "c1830107 01".replace(" ", ""),  # tag
        "83010701 00".replace(" ", ""),  # trailing byte
        "830107fa3f800000",  # float transfer
        "8301075bffffffffffffffff",  # absurd byte string length
        "9bffffffffffffffff",  # absurd array length
        "8181818181818101",  # nested too deep
    ],
)
def test_malformed_inputs_raise_amiup_errors(hexdata: str) -> None:
    with pytest.raises(AmiupError) as ex:
        decode(bytes.fromhex(hexdata))
    assert ex.value.code in {"malformed-message", "too-large"}


def test_caps_are_enforced_before_decoding() -> None:
    small = WireLimits(max_message=64, max_block_size=32)
    with pytest.raises(AmiupError) as ex:
        decode(encode(Block(1, 0, b"x" * 100)), small)
    assert ex.value.code == "too-large"
    with pytest.raises(AmiupError) as ex:
        decode(encode(Block(1, 0, b"x" * 40)), small)
    assert ex.value.code == "too-large"
    with pytest.raises(AmiupError):
        Block(1, 0, b"x" * 5000)


def test_constructors_validate() -> None:
    for bad in (
        lambda: Query(-1),
        lambda: Query(True),
        lambda: Block(1, 0, b""),
        lambda: Accept(1, "ami_app", 512, 10, b"\x00"),  # bitmap too short for 10 blocks
        lambda: Missing(1, 10, b"\x00\xff"),  # stray bits past block 9
        lambda: Reject(1, ""),
        lambda: Verified(1, b"short"),
    ):
        with pytest.raises(AmiupError):
            bad()


def test_bitmap_helpers() -> None:
    assert encode_bitmap([0, 9], 10) == b"\x01\x02"
    assert decode_bitmap(b"\x01\x02", 10) == [0, 9]
    with pytest.raises(AmiupError):
        decode_bitmap(b"\x01\x04", 10)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_amiup_errors(data: bytes) -> None:
    try:
        msg = decode(data)
    except AmiupError:
        return
    assert encode(msg) == data


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(SAMPLES), st.data())
def test_mutated_messages_raise_only_amiup_errors(msg: Message, data: st.DataObject) -> None:
    raw = bytearray(encode(msg))
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        pos = data.draw(st.integers(0, max(0, len(raw) - 1)))
        if op == "flip" and raw:
            raw[pos] ^= data.draw(st.integers(1, 255))
        elif op == "insert":
            raw.insert(pos, data.draw(st.integers(0, 255)))
        elif op == "delete" and raw:
            del raw[pos]
        else:
            del raw[pos:]
    try:
        out = decode(bytes(raw))
    except AmiupError:
        return
    assert encode(out) == bytes(raw)
