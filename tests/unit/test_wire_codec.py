"""Wire codec: literal bytes, round trips, caps, and fuzzing that only amiup errors escape."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amiup.errors import AmiupError
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
    Running(b"\x01\x02\x03\x04", "1.1.0", "committed"),
    GetStatus(b"\x01\x02\x03\x04", "ami_app", brief=True, gather_ms=(9000, 6000, 3000, 0)),
    GetStatus(b"\x01\x02", "ami_app", brief=True, meters=("m-7", "m-9")),
    Gathered(b"\x01\x02\x03\x04", (GatherGroup("1.1.0", "committed", ("m-1", "m-2")),
                                      GatherGroup("1.0.0", "reverted", ("m-3",)))),
]


@req("SEC-2")
def test_literal_bytes_of_query_block_and_activate() -> None:
    # [2, 7, transfer 1, seq 0, crc32(h'8402070100') = 0x34190e00]
    assert encode(Query(1)) == bytes.fromhex("85020701001a34190e00")
    # [2, 12, 1, "ami_app", null, crc32(...)]
    assert encode(Activate(1, "ami_app")) == bytes.fromhex("86020c0167616d695f617070f61a4cc206ec")
    # [2, 6, transfer 7, index 3, h'616263', crc32(h'850206070343616263')]
    assert encode(Block(7, 3, b"abc")) == bytes.fromhex("8602060703436162631af25f4682")
    assert decode(bytes.fromhex("8602060703436162631af25f4682")) == Block(7, 3, b"abc")
    assert zlib.crc32(bytes.fromhex("8402070100")) == 0x34190E00
    # [2, 17, h'01020304', "1.2.4", "committed", crc]: the 29-byte cell read-back answer
    running = bytes.fromhex("860211440102030465312e322e3469636f6d6d69747465641a6b741153")
    assert encode(Running(b"\x01\x02\x03\x04", "1.2.4", "committed")) == running
    assert len(running) == 29


def test_a_version_1_message_is_refused() -> None:
    body = bytes.fromhex("8401070100")  # [1, 7, 1, 0]: the encoding before coded repair
    old = bytes.fromhex("85010701001a") + zlib.crc32(body).to_bytes(4, "big")
    with pytest.raises(AmiupError, match="unsupported wire version 1"):
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
    g = Gathered(b"n", (GatherGroup("1.1.0", "committed", ("m-1", "m-2")),
                        GatherGroup("1.0.0", "reverted", ("m-3",))))
    assert [(m, r.running, r.state) for m, r in g.answers()] == [
        ("m-1", "1.1.0", "committed"), ("m-2", "1.1.0", "committed"), ("m-3", "1.0.0", "reverted")]
    for bad in ((), (GatherGroup("1.1.0", "committed", tuple(f"m-{i}" for i in range(300))),) * 2):
        with pytest.raises(AmiupError):
            Gathered(b"n", bad)
    with pytest.raises(AmiupError):
        GatherGroup("1.1.0", "committed", ())


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
