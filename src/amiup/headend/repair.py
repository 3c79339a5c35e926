"""The repair cost rules: what to send to a cell so that every meter gets the payload for the
least airtime.

Airtime of one multicast frame in a cell is ``H_cell`` transmissions (the flood reaches every
hop depth once); a unicast frame to meter ``i`` costs ``h_i``. So a plain block missed by the
set ``S`` is repaired by multicast iff::

    sum(h_i for i in S) > H_cell * (1 + margin)

``margin`` (default 0) biases toward unicast, whose delivery is acknowledged per meter. With
erasure-coded repair (``amiup.wire.fec``) any symbol repairs any one missing block at any
meter, so the rules count symbols instead of blocks: ``coded_repeats`` prices the symbols sent
up front (and the margin of any batch) against one more NACK round, ``coded_round`` splits a
round between multicast and unicast symbols, ``still_short`` says when to stop asking, and
``announce_repeats`` how often to offer."""

from __future__ import annotations

import functools
import math

import numpy as np
import numpy.typing as npt


def multicast_mask(
    missing: npt.NDArray[np.bool_],
    hops: npt.NDArray[np.integer],
    cell_hops: int,
    margin: float = 0.0,
) -> npt.NDArray[np.bool_]:
    """Blocks (columns of ``missing``, meters x blocks) to repair by multicast."""
    if missing.size == 0:
        return np.zeros(missing.shape[1] if missing.ndim == 2 else 0, dtype=bool)
    hop_sum = hops.astype(np.float64) @ missing
    return np.asarray(hop_sum > cell_hops * (1.0 + margin), dtype=bool)


def repair_by_multicast(missing_hops: list[int], cell_hops: int, margin: float = 0.0) -> bool:
    """Scalar form of the rule for one block: hop depths of the meters that miss it."""
    return sum(missing_hops) > cell_hops * (1.0 + margin)


def multicast_blocks(
    block_of_miss: npt.NDArray[np.integer],
    hops_of_miss: npt.NDArray[np.floating] | npt.NDArray[np.integer],
    blocks: int,
    cell_hops: float,
    margin: float = 0.0,
) -> npt.NDArray[np.bool_]:
    """Sparse form: one entry per (meter, block) miss, given its block and the meter's depth."""
    hop_sum = np.bincount(block_of_miss, weights=hops_of_miss, minlength=blocks)
    return np.asarray(hop_sum > cell_hops * (1.0 + margin), dtype=bool)


def announce_repeats(loss: float, meters: int, max_repeats: int = 5, target: float = 1e-3) -> int:
    """Multicast offers to send so that hardly any meter misses them all.

    A meter that misses every announce joins late, in the first NACK round, and needs the
    whole payload by unicast: on a deep meter that alone can take as long as the multicast
    did, and it decides when the last meter is confirmed. So announce until the expected
    number of such meters, ``meters * loss**k``, is below ``target`` (one meter in a
    thousand cells); an offer costs about one block of airtime per repeat.
    """
    k = 1
    while k < max_repeats and loss > 0 and meters * loss**k > target:
        k += 1
    return k


def short_probability(loss: float, need: int, extra: int) -> float:
    """P(a meter gets fewer than ``need`` of ``need + extra`` symbols): P(Bin(n, loss) > extra).

    Summed in log space from ``extra + 1`` until the terms vanish, so it stays cheap and
    exact for the tails that matter (1e-6 and below) at any block count.
    """
    n = need + extra
    if loss <= 0.0 or n == 0 or extra >= n:
        return 0.0
    if loss >= 1.0:
        return 1.0
    lp, lq = math.log(loss), math.log1p(-loss)
    j = extra + 1
    term = math.exp(math.lgamma(n + 1) - math.lgamma(j + 1) - math.lgamma(n - j + 1) + j * lp + (n - j) * lq)
    ratio = loss / (1.0 - loss)
    total = 0.0
    while True:  # next pmf term by the recurrence pmf(j+1) = pmf(j) (n-j)/(j+1) p/q
        total += term
        if j >= n or (j > n * loss and term < total * 1e-12):
            break
        term *= (n - j) / (j + 1) * ratio
        j += 1
    return min(1.0, total)


@functools.lru_cache(maxsize=65536)  # pure; the models ask the same questions per meter
def coded_repeats(loss: float, need: int, meters: int, symbol_air: float, round_air: float,
                  answer_air: float = 0.0, max_extra: int | None = None) -> int:
    """Coded symbols to multicast beyond ``need``: the airtime they cost against a round saved.

    Each extra symbol costs ``symbol_air`` (H x bytes on air) for sure. Stopping at ``r``
    risks that some of ``meters`` receivers, each needing ``need`` symbols and losing each
    with probability ``loss``, are still short: that costs one more NACK round,
    ``round_air`` (its wait and query, in airtime-equivalent bytes), plus ``answer_air``
    for each short meter's answer. Minimise ``r * symbol_air + P(any short | r) * round_air
    + E[short meters | r] * answer_air``. With a random linear code every
    received symbol counts, whichever block a meter lacks; that is what makes ``r`` ~
    ``loss * need`` plus a few, instead of a full second copy of every block.
    """
    if loss <= 0.0 or need <= 0 or meters <= 0:
        return 0
    # below the mean loss the symbols are needed anyway (a later round would send them):
    # the choice is only how much margin to add on top
    start = math.ceil(need * loss / (1.0 - loss))
    cap = max_extra if max_extra is not None else start + need + 64
    best_r, best = start, math.inf
    for r in range(start, cap + 1):
        p_short = short_probability(loss, need, r)
        any_short = -math.expm1(meters * math.log1p(-min(p_short, 1 - 1e-16)))
        cost = r * symbol_air + any_short * round_air + meters * p_short * answer_air
        if cost < best:
            best_r, best = r, cost
        elif meters * p_short < 1e-4:
            break  # the risk term is gone: every further symbol only costs
    return best_r


def coded_round(needs: npt.NDArray[np.integer], hops: npt.NDArray[np.floating] | npt.NDArray[np.integer],
                cell_hops: float, loss: float, round_air_per_hop: float,
                answer_per_hop: float = 0.0) -> tuple[int, npt.NDArray[np.bool_]]:
    """One NACK round of coded repair: how many symbols to multicast, and who gets unicast.

    A meter short of ``need_i`` symbols is served either by the multicast (``c`` fresh
    symbols to the whole cell, ``c x H`` transmissions) or by ``need_i`` plus a margin of
    unicast symbols (``h_i`` transmissions each). Choose ``c`` to minimise the
    transmissions: multicast ``c`` covers every meter with ``need_i`` at most ``c`` less
    its loss margin. ``round_air_per_hop`` and ``answer_per_hop`` (a short meter's answer),
    both in units of one symbol's transmission, price the risk of yet another round.
    Returns ``(c, unicast_mask)``.
    """
    needs = np.asarray(needs, dtype=np.int64)
    h = np.asarray(hops, dtype=np.float64)
    if len(needs) == 0 or int(needs.max(initial=0)) <= 0:
        return 0, np.zeros(len(needs), dtype=bool)
    uni_each = np.array([n + coded_repeats(loss, int(n), 1, 1.0, round_air_per_hop, answer_per_hop)
                         if n > 0 else 0 for n in needs], dtype=np.float64) * h
    best_c, best, best_mask = 0, float(uni_each.sum()), needs > 0
    top = int(needs.max())
    for need in sorted({int(n) for n in needs if n > 0}):
        served = needs <= need
        c = need + coded_repeats(loss, need, int(served.sum()), cell_hops, round_air_per_hop * cell_hops,
                                 answer_per_hop * float(h[served].mean()))
        cost = c * cell_hops + float(uni_each[~served].sum())
        if cost < best:
            best_c, best, best_mask = c, cost, (~served) & (needs > 0)
        if need == top:
            break
    return best_c, best_mask


def still_short(needs: npt.NDArray[np.integer], sent: int, loss: float) -> float:
    """Expected meters still short after ``sent`` multicast symbols, each needing ``needs[i]``.

    When it is well below one, the head-end goes straight to verify instead of asking
    again: the rare meter still short answers the verify ``transfer-incomplete`` and is
    served by a unicast session.
    """
    return float(sum(short_probability(loss, int(n), sent - int(n)) if sent >= n else 1.0
                     for n in needs if n > 0))
