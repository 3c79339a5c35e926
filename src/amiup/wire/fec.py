"""Erasure-coded multicast repair: a small random linear code (RLNC) over GF(2^8), sans-I/O.

After the K source blocks of a transfer, the head-end multicasts coded symbols, each a random
linear combination of all K (padded) source blocks. A meter missing m blocks recovers them from
any m coded symbols whose coefficient rows are independent on its missing columns; with
GF(2^8) coefficients each extra symbol fails to help with probability about 1/256, so one
repair stream serves every meter of a cell whatever blocks each one lost.

Why our own code and not zfec / a Reed-Solomon library: those cap a stripe at 256 shares
(the field size), so a 1024-block image would have to be striped into groups of at most
256, and each meter would need its repair symbols *per stripe* it lost blocks in: the
head-end has to send a margin for every stripe instead of one margin for the whole image.
A random linear code over the whole image has no such cap (any K up to the wire limit).

Field: GF(2^8) with the polynomial x^8 + x^4 + x^3 + x^2 + 1 (0x11D), generator 2; addition
is XOR, multiplication a 256x256 lookup table built once from log/exp tables. Coefficients are
not sent: both ends derive them from SHAKE-128(DOMAIN || transfer || seq) (see
``coefficients``). The decoder keeps only the coefficient rows in reduced echelon form while
symbols arrive (cheap, O(rank x m) per symbol) and combines the raw symbol data once, in
``solve``; it holds at most ``max_pending`` symbols (block_size bytes each) in RAM.
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import numpy.typing as npt

from amiup.errors import error
from amiup.wire.limits import DEFAULT_LIMITS

DOMAIN = b"amiup-fec-v1"
"""Domain separation of the coefficient derivation; changing it changes every code."""

POLY = 0x11D
MAX_SEQ = 2**32 - 1
MAX_PENDING = 64
"""Coded symbols a meter's decoder holds per transfer at most (RAM: this many block sizes,
64 KiB at 1 KiB blocks). The head-end and the fleet model serve meters missing more blocks
with plain blocks."""
MAX_TRANSFER = 2**64 - 1

U8 = npt.NDArray[np.uint8]


def _tables() -> tuple[U8, U8]:
    """(MUL 256x256, INV 256) for GF(2^8) mod POLY, built from log/exp tables of generator 2."""
    exp = np.zeros(512, dtype=np.uint8)
    log = np.zeros(256, dtype=np.int64)
    x = 1
    for i in range(255):
        exp[i] = x
        log[x] = i
        x <<= 1
        if x & 0x100:
            x ^= POLY
    exp[255:510] = exp[0:255]
    mul = exp[log[:, None] + log[None, :]]
    mul[0, :] = 0
    mul[:, 0] = 0
    inv = np.zeros(256, dtype=np.uint8)
    inv[1:] = exp[255 - log[1:]]
    return mul.astype(np.uint8), inv


_MUL, _INV = _tables()
_MUL.setflags(write=False)
_INV.setflags(write=False)
_MUL_FLAT = _MUL.ravel()


def gf_mul_table() -> U8:
    """The read-only 256x256 GF(2^8) multiplication table (``table[a, b] == a * b``)."""
    return _MUL


def _check_int(name: str, value: object, lo: int, hi: int, code: str) -> int:
    """``value`` as a plain int in lo..hi (numpy integers accepted, bools and floats not)."""
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        number = None
    if number is None or isinstance(value, bool) or not lo <= number <= hi:
        raise error(code, f"{name} {value!r} outside {lo}..{hi}")
    return number


def _check_shape(k: int, block_size: int) -> None:
    """Block count and block size within the wire limits."""
    _check_int("block count", k, 1, DEFAULT_LIMITS.max_blocks, "invalid-argument")
    _check_int("block size", block_size, DEFAULT_LIMITS.min_block_size,
               DEFAULT_LIMITS.max_block_size, "invalid-argument")


def coefficients(transfer: int, seq: int, k: int) -> bytes:
    """k coefficient bytes (GF(2^8) elements) of coded symbol ``seq`` of a transfer of k blocks.

    Derived from SHAKE-128(DOMAIN || transfer as 8 bytes big-endian || seq as 4 bytes
    big-endian), so head-end and meter compute the same vector without sending it. Zero bytes
    are allowed (a zero coefficient just leaves that block out of the combination).
    """
    transfer = _check_int("transfer", transfer, 0, MAX_TRANSFER, "invalid-argument")
    seq = _check_int("symbol seq", seq, 0, MAX_SEQ, "invalid-argument")
    k = _check_int("block count", k, 1, DEFAULT_LIMITS.max_blocks, "invalid-argument")
    xof = hashlib.shake_128(DOMAIN + transfer.to_bytes(8, "big") + seq.to_bytes(4, "big"))
    return xof.digest(k)


def pad(block: bytes, block_size: int) -> bytes:
    """``block`` zero-padded to ``block_size`` bytes (only the last block of an image is short)."""
    if len(block) > block_size:
        raise error("invalid-argument", f"block of {len(block)} bytes exceeds block size {block_size}")
    return bytes(block) + bytes(block_size - len(block))


def _scale(coefs: U8, rows: U8) -> U8:
    """``out[i] = coefs[i] * rows[i]`` over GF(2^8); a 1-D ``rows`` is one row for every i."""
    if rows.ndim == 1:
        return np.take(_MUL[coefs], rows, axis=1)  # a few times faster than 2-D fancy indexing
    return np.take(_MUL_FLAT, (coefs.astype(np.uint16) << 8)[:, None] | rows)


class Encoder:
    """Head-end side: the K source blocks as a (K, block_size) uint8 matrix.

    The matrix is stored zero-padded to a multiple of 8 columns so blocks can be XORed as
    uint64 words: a symbol groups the blocks by coefficient value, XORs each group (one
    ``reduceat`` pass over the image) and multiplies only the <= 255 group sums.
    """

    def __init__(self, transfer: int, blocks: Sequence[bytes], block_size: int) -> None:
        self.transfer = _check_int("transfer", transfer, 0, MAX_TRANSFER, "invalid-argument")
        _check_shape(len(blocks), block_size)
        self.k = len(blocks)
        self.block_size = int(block_size)
        width = (block_size + 7) // 8 * 8
        matrix = np.zeros((self.k, width), dtype=np.uint8)
        for j, block in enumerate(blocks):
            if len(block) > block_size:
                raise error("invalid-argument", f"block {j} has {len(block)} bytes > {block_size}")
            matrix[j, :len(block)] = np.frombuffer(block, dtype=np.uint8)
        self._words = matrix.view(np.uint64)

    def symbol(self, seq: int) -> bytes:
        """Coded symbol ``seq``: block_size bytes, sum_j c_j * pad(B_j) over GF(2^8)."""
        coefs = np.frombuffer(coefficients(self.transfer, seq, self.k), dtype=np.uint8)
        order = np.argsort(coefs, kind="stable")
        ranked = coefs[order]
        starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
        values = ranked[starts]
        sums = np.bitwise_xor.reduceat(self._words[order], starts, axis=0).view(np.uint8)
        keep = values != 0
        if not keep.any():
            return bytes(self.block_size)
        out = np.bitwise_xor.reduce(_scale(values[keep], sums[keep]), axis=0)
        return out[:self.block_size].tobytes()


class Decoder:
    """Meter side: recover the missing source blocks of one transfer from coded symbols.

    Volatile (RAM) state only: after a power loss the meter starts a new Decoder from its
    persisted missing-block bitmap. Holds at most ``max_pending`` unsolved symbols (RAM bound,
    block_size bytes each); further useful symbols are refused (return value says so).

    State: the unknown source indices (the columns, sorted), the held symbols' raw data, and
    their coefficient rows restricted to the unknown columns in reduced row echelon form
    (``_rref``, one row per held symbol, ``_pivots[i]`` the pivot column of row i). Every held
    symbol is independent of the others on the unknowns, so rank == number held.
    """

    def __init__(self, transfer: int, k: int, block_size: int, missing: Iterable[int],
                 max_pending: int = MAX_PENDING) -> None:
        transfer = _check_int("transfer", transfer, 0, MAX_TRANSFER, "invalid-argument")
        _check_shape(k, block_size)
        k, block_size = int(k), int(block_size)
        max_pending = _check_int("max_pending", max_pending, 1, DEFAULT_LIMITS.max_blocks,
                                 "invalid-argument")
        cols = sorted({_check_int("missing block", i, 0, k - 1, "invalid-argument") for i in missing})
        self.transfer = transfer
        self.k = k
        self.block_size = int(block_size)
        self.max_pending = max_pending
        self._set_cols(np.array(cols, dtype=np.intp))
        self._clear_symbols()

    def _set_cols(self, cols: npt.NDArray[np.intp]) -> None:
        self._cols = cols
        self._unknown = frozenset(int(i) for i in cols)

    def _clear_symbols(self) -> None:
        self._rref: U8 = np.zeros((0, len(self._cols)), dtype=np.uint8)
        self._pivots: list[int] = []
        self._seqs: list[int] = []
        self._data: list[bytes] = []

    @property
    def unknown(self) -> frozenset[int]:
        """Source indices not yet known."""
        return self._unknown

    @property
    def rank(self) -> int:
        """Independent symbols held, counted on the unknown columns."""
        return len(self._pivots)

    @property
    def need(self) -> int:
        """Coded symbols still needed before ``solve`` (never negative)."""
        return len(self._cols) - self.rank

    def ready(self) -> bool:
        """True when every unknown block can be solved for."""
        return len(self._cols) > 0 and self.need == 0

    def _row(self, seq: int) -> U8:
        """Coefficients of symbol ``seq`` on the unknown columns (a fresh, writable array)."""
        full = np.frombuffer(coefficients(self.transfer, seq, self.k), dtype=np.uint8)
        return full[self._cols]

    def _insert(self, seq: int, data: bytes, row: U8) -> bool:
        """Reduce ``row`` against the echelon rows; keep the symbol if it adds rank."""
        if self._pivots:
            row = row ^ np.bitwise_xor.reduce(_scale(row[self._pivots], self._rref), axis=0)
        nonzero = np.flatnonzero(row)
        if nonzero.size == 0:
            return False
        q = int(nonzero[0])
        row = _MUL[_INV[row[q]], row]
        if self._pivots:
            self._rref ^= _scale(self._rref[:, q], row)
        self._rref = np.vstack([self._rref, row[None, :]])
        self._pivots.append(q)
        self._seqs.append(seq)
        self._data.append(data)
        return True

    def add(self, seq: int, data: bytes) -> bool:
        """Take coded symbol ``seq`` (block_size bytes).

        False if useless: dependent on the held symbols, nothing unknown, or ``max_pending``
        symbols already held. Cheap: only the coefficient row is reduced here; the symbol's
        data is kept raw until ``solve()``.
        """
        seq = _check_int("symbol seq", seq, 0, MAX_SEQ, "malformed-message")
        if len(data) != self.block_size:
            raise error("malformed-message", f"symbol of {len(data)} bytes, expected {self.block_size}")
        if len(self._cols) == 0 or len(self._seqs) >= self.max_pending:
            return False
        return self._insert(seq, bytes(data), self._row(seq))

    def learned(self, index: int) -> None:
        """Source block ``index`` arrived by other means (a plain block): no longer unknown.

        Dropping a non-pivot column keeps the echelon form; dropping row i's pivot column
        re-pivots row i on its first remaining nonzero entry, or, if none is left, the rank
        dropped: the held symbols are re-inserted and the one now dependent is discarded.
        """
        index = _check_int("block index", index, 0, self.k - 1, "malformed-message")
        if index not in self._unknown:
            return
        c = int(np.flatnonzero(self._cols == index)[0])
        self._set_cols(np.delete(self._cols, c))
        if len(self._cols) == 0:
            self._clear_symbols()
            return
        self._rref = np.delete(self._rref, c, axis=1)
        lost = self._pivots.index(c) if c in self._pivots else -1
        self._pivots = [p - 1 if p > c else p for p in self._pivots]
        if lost < 0:
            return
        row = self._rref[lost]
        nonzero = np.flatnonzero(row)
        if nonzero.size == 0:
            self._rebuild()
            return
        q = int(nonzero[0])
        self._rref[lost] = _MUL[_INV[row[q]], row]
        factors = self._rref[:, q].copy()
        factors[lost] = 0
        self._rref ^= _scale(factors, self._rref[lost])
        self._pivots[lost] = q

    def _rebuild(self) -> None:
        """Re-insert the held symbols in arrival order, dropping those now dependent."""
        held = list(zip(self._seqs, self._data, strict=True))
        self._clear_symbols()
        for seq, data in held:
            self._insert(seq, data, self._row(seq))

    def solve(self, known: Callable[[int], bytes]) -> list[tuple[int, bytes]]:
        """When ``ready()``: every unknown block as (index, padded block_size bytes), by index.

        ``known(j)`` returns the stored (padded or unpadded) source block j for j not unknown;
        each is read at most once, and its contribution is subtracted from all held symbols
        in one vectorized step. Then Gauss-Jordan on the m x m system, applied to the data
        rows. Afterwards the decoder is empty (nothing unknown). Nothing changes if ``known``
        raises.
        """
        if not self.ready():
            raise error("invalid-state", f"decoder needs {self.need} more symbols "
                        f"for {len(self._cols)} unknown blocks")
        m = len(self._cols)
        full = np.stack([np.frombuffer(coefficients(self.transfer, s, self.k), dtype=np.uint8)
                         for s in self._seqs])
        data = np.stack([np.frombuffer(d, dtype=np.uint8) for d in self._data])
        is_known = np.ones(self.k, dtype=bool)
        is_known[self._cols] = False
        for j in np.flatnonzero(is_known & full.any(axis=0)):
            block = np.frombuffer(pad(known(int(j)), self.block_size), dtype=np.uint8)
            data ^= _scale(full[:, j], block)
        system = full[:, self._cols].copy()
        for c in range(m):
            r = c + int(np.flatnonzero(system[c:, c])[0])
            if r != c:
                system[[c, r]] = system[[r, c]]
                data[[c, r]] = data[[r, c]]
            inv = _INV[system[c, c]]
            system[c] = _MUL[inv, system[c]]
            data[c] = _MUL[inv, data[c]]
            factors = system[:, c].copy()
            factors[c] = 0
            rows = np.flatnonzero(factors)
            if rows.size:
                system[rows] ^= _scale(factors[rows], system[c])
                data[rows] ^= _scale(factors[rows], data[c])
        out = [(int(i), data[n].tobytes()) for n, i in enumerate(self._cols)]
        self._set_cols(np.zeros(0, dtype=np.intp))
        self._clear_symbols()
        return out
