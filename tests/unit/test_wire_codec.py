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
    ComponentStatus,
    Failed,
    GetStatus,
    Message,
    Missing,
    Offer,
    Query,
    Reject,
    Result,
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
]


@req("SEC-2")
def test_literal_bytes_of_query_block_and_activate() -> None:
    # [1, 7, transfer 1, seq 0, crc32(h'8401070100') = 0x26aca1ee]
    assert encode(Query(1)) == bytes.fromhex("85010701001a26aca1ee")
    # [1, 12, 1, "ami_app", null, crc32(...)]
    assert encode(Activate(1, "ami_app")) == bytes.fromhex("86010c0167616d695f617070f61a3b5cd41c")
    # [1, 6, transfer 7, index 3, h'616263', crc32(h'850106070343616263')]
    assert encode(Block(7, 3, b"abc")) == bytes.fromhex("8601060703436162631a7cd04161")
    assert decode(bytes.fromhex("8601060703436162631a7cd04161")) == Block(7, 3, b"abc")
    assert zlib.crc32(bytes.fromhex("8401070100")) == 0x26ACA1EE


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
        "84020701" + "1a" + zlib.crc32(bytes.fromhex("83020701")).to_bytes(4, "big").hex(),  # version
        "84016301" + "1a" + zlib.crc32(bytes.fromhex("83016301")).to_bytes(4, "big").hex(),  # tag
        "85010701001a26aca1ef",  # wrong check
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
