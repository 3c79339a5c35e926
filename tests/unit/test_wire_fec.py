"""Erasure-coded repair (RLNC over GF(2^8)): recovery, rank bookkeeping, overhead, bad input."""

from __future__ import annotations

import hashlib
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amiup.errors import AmiupError
from amiup.wire.fec import DOMAIN, Decoder, Encoder, coefficients, gf_mul_table, pad
from reqmark import req

# -- an independent pure-Python GF(2^8) (polynomial 0x11D) to check the numpy tables against


def gf_mul(a: int, b: int) -> int:
    """Shift-and-add multiply modulo x^8 + x^4 + x^3 + x^2 + 1."""
    out = 0
    while b:
        if b & 1:
            out ^= a
        a <<= 1
        if a & 0x100:
            a ^= 0x11D
        b >>= 1
    return out


def gf_inv(a: int) -> int:
    return next(b for b in range(1, 256) if gf_mul(a, b) == 1)


def gf_rank(rows: list[list[int]]) -> int:
    """Rank of a matrix over GF(2^8) by plain Gaussian elimination."""
    rows = [list(r) for r in rows]
    rank, ncols = 0, len(rows[0]) if rows else 0
    for c in range(ncols):
        pivot = next((r for r in range(rank, len(rows)) if rows[r][c]), None)
        if pivot is None:
            continue
        rows[rank], rows[pivot] = rows[pivot], rows[rank]
        inv = gf_inv(rows[rank][c])
        rows[rank] = [gf_mul(inv, x) for x in rows[rank]]
        for r in range(len(rows)):
            if r != rank and rows[r][c]:
                f = rows[r][c]
                rows[r] = [x ^ gf_mul(f, y) for x, y in zip(rows[r], rows[rank], strict=True)]
        rank += 1
    return rank


def split(payload: bytes, block_size: int) -> list[bytes]:
    return [payload[i:i + block_size] for i in range(0, len(payload), block_size)]


def feed_until_ready(dec: Decoder, enc: Encoder, start: int = 0, limit: int = 10_000) -> int:
    """Feed symbols start, start+1, ... until ready; the next seq to send."""
    seq = start
    while not dec.ready():
        assert seq < start + limit, "decoder never became ready"
        dec.add(seq, enc.symbol(seq))
        seq += 1
    return seq


# -- the field and the coefficient derivation


@req("AMI-4")
def test_mul_table_matches_reference_field() -> None:
    table = gf_mul_table()
    rng = random.Random(4)
    pairs = [(a, b) for a in (0, 1, 2, 0x80, 0xFF) for b in range(256)]
    pairs += [(rng.randrange(256), rng.randrange(256)) for _ in range(2000)]
    for a, b in pairs:
        assert table[a, b] == gf_mul(a, b)
    assert table[0x02, 0x80] == 0x1D  # the reduction polynomial's low byte
    assert not table.flags.writeable


@req("AMI-4")
def test_coefficients_known_answer_and_derivation() -> None:
    assert coefficients(0x0123456789ABCDEF, 7, 16).hex() == "9d57fddb2360c7c7cc0b70d6ffd9b3fe"
    assert coefficients(1, 0, 8).hex() == "deeda4070dede998"
    expect = hashlib.shake_128(DOMAIN + (5).to_bytes(8, "big") + (9).to_bytes(4, "big")).digest(300)
    assert coefficients(5, 9, 300) == expect
    assert DOMAIN == b"amiup-fec-v1"


@req("AMI-4")
def test_coefficients_deterministic_and_distinct() -> None:
    assert coefficients(3, 4, 64) == coefficients(3, 4, 64)
    assert coefficients(3, 4, 64) != coefficients(3, 5, 64)
    assert coefficients(3, 4, 64) != coefficients(4, 4, 64)
    assert coefficients(3, 4, 64)[:10] == coefficients(3, 4, 10)  # a prefix, as SHAKE is


@req("AMI-4")
def test_symbol_is_the_linear_combination() -> None:
    """Each symbol byte equals sum_j c_j * B_j[i] computed with the reference field."""
    rng = random.Random(11)
    blocks = [rng.randbytes(19) for _ in range(6)] + [rng.randbytes(5)]
    enc = Encoder(77, blocks, 19)
    for seq in (0, 1, 2**32 - 1):
        c = coefficients(77, seq, len(blocks))
        expect = bytearray(19)
        for j, block in enumerate(blocks):
            for i, byte in enumerate(pad(block, 19)):
                expect[i] ^= gf_mul(c[j], byte)
        assert enc.symbol(seq) == bytes(expect)


@req("AMI-4")
def test_pad() -> None:
    assert pad(b"ab", 4) == b"ab\x00\x00"
    assert pad(b"abcd", 4) == b"abcd"
    with pytest.raises(AmiupError) as exc:
        pad(b"abcde", 4)
    assert exc.value.code == "invalid-argument"


# -- recovery


@req("AMI-4")
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), k=st.integers(1, 200), block_size=st.integers(16, 256),
       seed=st.integers(0, 2**32 - 1), transfer=st.integers(0, 2**64 - 1))
def test_recovers_any_erasure_set(data: st.DataObject, k: int, block_size: int, seed: int,
                                  transfer: int) -> None:
    rng = random.Random(seed)
    last = data.draw(st.integers(1, block_size), label="last block length")
    blocks = split(rng.randbytes((k - 1) * block_size + last), block_size)
    fraction = data.draw(st.floats(0, 1), label="fraction lost")
    missing = set(rng.sample(range(k), max(1, round(fraction * k))))
    enc = Encoder(transfer, blocks, block_size)
    dec = Decoder(transfer, k, block_size, missing, max_pending=max(64, len(missing)))
    assert dec.unknown == missing and dec.need == len(missing) and dec.rank == 0
    sent = feed_until_ready(dec, enc)
    assert sent <= len(missing) + 6  # 1/256 per extra: never more than a few
    reads: list[int] = []

    def known(j: int) -> bytes:
        assert j not in missing
        reads.append(j)
        return blocks[j]

    out = dec.solve(known)
    assert [i for i, _ in out] == sorted(missing)
    for i, block in out:
        assert len(block) == block_size
        assert block[:len(blocks[i])] == blocks[i]
    assert len(reads) == len(set(reads))  # each known block read at most once
    assert dec.unknown == frozenset() and not dec.ready() and dec.rank == 0


@req("AMI-4")
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), k=st.integers(2, 120), block_size=st.integers(16, 64),
       seed=st.integers(0, 2**32 - 1))
def test_recovers_with_plain_blocks_arriving_midway(data: st.DataObject, k: int, block_size: int,
                                                    seed: int) -> None:
    """Interleave coded symbols and learned() plain blocks; rank always matches the reference."""
    rng = random.Random(seed)
    blocks = split(rng.randbytes(k * block_size - rng.randrange(block_size)), block_size)
    missing = data.draw(st.sets(st.integers(0, k - 1), min_size=1), label="missing")
    enc = Encoder(seed, blocks, block_size)
    dec = Decoder(seed, k, block_size, missing, max_pending=max(64, len(missing)))
    accepted: list[int] = []
    seq = 0
    for _ in range(6 * k + 40):  # keeps going past ready: learned() then drops the rank
        if not dec.unknown or (dec.ready() and data.draw(st.booleans(), label="stop")):
            break
        if data.draw(st.booleans(), label="plain block next"):
            index = data.draw(st.sampled_from(sorted(dec.unknown)), label="plain block")
            dec.learned(index)
        else:
            if dec.add(seq, enc.symbol(seq)):
                accepted.append(seq)
            seq += 1
        cols = sorted(dec.unknown)
        rows = [[coefficients(seed, s, k)[c] for c in cols] for s in accepted]
        assert dec.rank == (gf_rank(rows) if cols else 0)
        assert dec.need == len(cols) - dec.rank >= 0
    if dec.unknown:
        seq = feed_until_ready(dec, enc, start=seq)
    if not dec.unknown:  # every missing block came plain: nothing to solve
        with pytest.raises(AmiupError) as exc:
            dec.solve(lambda j: blocks[j])
        assert exc.value.code == "invalid-state"
        return
    unknown = dec.unknown
    out = dec.solve(lambda j: blocks[j])
    assert {i for i, _ in out} == unknown
    for i, block in out:
        assert block == pad(blocks[i], block_size)


@req("AMI-4")
def test_learned_that_makes_a_symbol_dependent_drops_it() -> None:
    """Two symbols on two unknowns; once one block arrives plain both rows lie on one column."""
    blocks = [bytes([i]) * 16 for i in range(1, 5)]
    enc = Encoder(9, blocks, 16)
    dec = Decoder(9, 4, 16, [0, 1])
    assert dec.add(0, enc.symbol(0)) and dec.add(1, enc.symbol(1))
    assert dec.ready() and dec.rank == 2
    dec.learned(0)
    assert dec.unknown == {1} and dec.rank == 1 and dec.need == 0 and dec.ready()
    assert dec.add(2, enc.symbol(2)) is False  # full rank on the one unknown
    assert dec.solve(lambda j: blocks[j]) == [(1, blocks[1])]


@req("AMI-4")
def test_learned_non_pivot_column_keeps_rank() -> None:
    blocks = [bytes([i]) * 16 for i in range(1, 5)]
    enc = Encoder(9, blocks, 16)
    dec = Decoder(9, 4, 16, [0, 1, 2])
    assert dec.add(0, enc.symbol(0))
    dec.learned(2)
    dec.learned(3)  # already known: no effect
    assert dec.unknown == {0, 1} and dec.rank == 1 and dec.need == 1
    feed_until_ready(dec, enc, start=1)
    assert dict(dec.solve(lambda j: blocks[j])) == {0: blocks[0], 1: blocks[1]}


@req("AMI-4")
def test_learned_every_unknown_empties_the_decoder() -> None:
    enc = Encoder(1, [b"a" * 16, b"b" * 16], 16)
    dec = Decoder(1, 2, 16, [0, 1])
    assert dec.add(5, enc.symbol(5))
    dec.learned(0)
    dec.learned(1)
    assert dec.unknown == frozenset() and dec.rank == 0 and dec.need == 0 and not dec.ready()
    assert dec.add(6, enc.symbol(6)) is False  # nothing unknown: useless


# -- bookkeeping and the RAM bound


@req("AMI-4")
def test_dependent_symbols_refused_and_need_never_negative() -> None:
    rng = random.Random(2)
    blocks = [rng.randbytes(32) for _ in range(10)]
    enc = Encoder(123, blocks, 32)
    dec = Decoder(123, 10, 32, [1, 4, 7])
    assert dec.add(0, enc.symbol(0)) is True
    assert dec.add(0, enc.symbol(0)) is False  # the same symbol twice
    assert dec.rank == 1 and dec.need == 2
    seq = feed_until_ready(dec, enc, start=1)
    assert dec.need == 0 and dec.rank == 3
    for s in range(seq, seq + 5):  # once ready every further symbol is dependent
        assert dec.add(s, enc.symbol(s)) is False
        assert dec.need == 0
    assert dict(dec.solve(lambda j: blocks[j])) == {i: blocks[i] for i in (1, 4, 7)}


@req("AMI-4")
def test_max_pending_bounds_held_symbols() -> None:
    k = 40
    rng = random.Random(3)
    blocks = [rng.randbytes(16) for _ in range(k)]
    enc = Encoder(8, blocks, 16)
    dec = Decoder(8, k, 16, range(20), max_pending=5)
    taken = sum(dec.add(s, enc.symbol(s)) for s in range(30))
    assert taken == 5 and dec.rank == 5 and dec.need == 15 and not dec.ready()
    for i in range(15, 20):  # the rest arrive plain: only 15 unknowns left, still short
        dec.learned(i)
    assert dec.need == 10 and dec.add(99, enc.symbol(99)) is False
    for i in range(5, 15):
        dec.learned(i)
    assert dec.rank == 5 and dec.ready()
    assert dict(dec.solve(lambda j: blocks[j])) == {i: blocks[i] for i in range(5)}


@req("AMI-4")
def test_nothing_missing_means_every_symbol_useless() -> None:
    enc = Encoder(1, [b"x" * 16], 16)
    dec = Decoder(1, 1, 16, [])
    assert dec.add(0, enc.symbol(0)) is False
    assert not dec.ready() and dec.need == 0 and dec.unknown == frozenset()


@req("AMI-4")
def test_short_known_blocks_are_padded_and_read_once() -> None:
    rng = random.Random(5)
    blocks = split(rng.randbytes(5 * 64 - 10), 64)
    enc = Encoder(6, blocks, 64)
    dec = Decoder(6, 5, 64, [0, 2])
    feed_until_ready(dec, enc)
    reads: list[int] = []

    def known(j: int) -> bytes:
        reads.append(j)
        return blocks[j]  # block 4 is short: unpadded

    out = dec.solve(known)
    assert sorted(reads) == [1, 3, 4]
    assert dict(out) == {0: blocks[0], 2: blocks[2]}


# -- overhead statistics (counts, not time)


@req("AMI-4")
def test_overhead_beyond_m_is_rarely_needed() -> None:
    """300 trials, m=20 of k=60: extra symbols needed is 0 in >= 97% (theory: ~99.6%)."""
    k, m, trials = 60, 20, 300
    rng = random.Random(20261129)
    extras = []
    for trial in range(trials):
        dec = Decoder(10_000 + trial, k, 16, rng.sample(range(k), m), max_pending=64)
        seq = 0
        while not dec.ready():  # the coefficient rows alone decide readiness; data is irrelevant
            dec.add(seq, bytes(16))
            seq += 1
        extras.append(seq - m)
    assert sum(e == 0 for e in extras) >= 0.97 * trials
    assert max(extras) <= 3


# -- bad input


@req("AMI-4")
def test_bad_symbols_are_malformed_messages() -> None:
    enc = Encoder(1, [b"a" * 16, b"b" * 16], 16)
    dec = Decoder(1, 2, 16, [0])
    for seq, data in [(0, b"x" * 15), (0, b"x" * 17), (-1, enc.symbol(0)), (2**32, enc.symbol(0))]:
        with pytest.raises(AmiupError) as exc:
            dec.add(seq, data)
        assert exc.value.code == "malformed-message"
    for index in (-1, 2, 10**9):
        with pytest.raises(AmiupError) as exc:
            dec.learned(index)
        assert exc.value.code == "malformed-message"
    assert dec.rank == 0 and dec.unknown == {0}  # nothing changed


@req("AMI-4")
def test_solve_before_ready_is_invalid_state() -> None:
    enc = Encoder(1, [b"a" * 16, b"b" * 16, b"c" * 16], 16)
    dec = Decoder(1, 3, 16, [0, 1])
    dec.add(0, enc.symbol(0))
    with pytest.raises(AmiupError) as exc:
        dec.solve(lambda j: b"c" * 16)
    assert exc.value.code == "invalid-state"
    assert dec.rank == 1 and dec.unknown == {0, 1}


@req("AMI-4")
def test_bad_arguments_are_usage_errors() -> None:
    cases = [
        lambda: Decoder(1, 0, 16, []),
        lambda: Decoder(1, 4, 8, []),  # below the wire's minimum block size
        lambda: Decoder(1, 4, 16, [4]),
        lambda: Decoder(1, 4, 16, [-1]),
        lambda: Decoder(-1, 4, 16, [0]),
        lambda: Decoder(1, 4, 16, [0], max_pending=0),
        lambda: Encoder(1, [], 16),
        lambda: Encoder(1, [b"x" * 17], 16),
        lambda: Encoder(2**64, [b"x"], 16),
        lambda: coefficients(1, 2**32, 4),
        lambda: coefficients(1, 0, 0),
    ]
    for case in cases:
        with pytest.raises(AmiupError) as exc:
            case()
        assert exc.value.code == "invalid-argument"


@req("AMI-4")
def test_known_block_too_long_leaves_decoder_intact() -> None:
    blocks = [b"a" * 16, b"b" * 16]
    enc = Encoder(1, blocks, 16)
    dec = Decoder(1, 2, 16, [0])
    feed_until_ready(dec, enc)
    with pytest.raises(AmiupError):
        dec.solve(lambda j: b"b" * 17)
    assert dec.ready()
    assert dec.solve(lambda j: blocks[j]) == [(0, blocks[0])]


@req("AMI-4")
def test_encoder_accepts_all_zero_coefficients_shape() -> None:
    """A symbol is always block_size bytes, even for a one-block image."""
    enc = Encoder(0, [b"\x01" * 3], 16)
    sym = enc.symbol(0)
    c = coefficients(0, 0, 1)[0]
    assert sym == bytes([gf_mul(c, 1)] * 3) + bytes(13)
    assert np.frombuffer(sym, dtype=np.uint8).shape == (16,)


@req("AMI-4")
def test_numpy_integers_accepted_bools_refused() -> None:
    """Indices often come out of numpy (bitmaps, the simulator): they work like ints."""
    blocks = [b"a" * 16, b"b" * 16, b"c" * 16]
    enc = Encoder(np.uint64(3), blocks, np.int64(16))  # type: ignore[arg-type]
    dec = Decoder(3, 3, 16, np.array([0, 2]))  # type: ignore[arg-type]
    dec.learned(np.int64(2))  # type: ignore[arg-type]
    assert dec.add(np.uint32(0), enc.symbol(0))  # type: ignore[arg-type]
    assert dec.solve(lambda j: blocks[j]) == [(0, blocks[0])]
    with pytest.raises(AmiupError) as exc:
        Decoder(3, 3, 16, [True])
    assert exc.value.code == "invalid-argument"
