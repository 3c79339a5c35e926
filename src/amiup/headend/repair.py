"""The repair cost rule: multicast a block again only where that is cheaper than unicast.

Airtime of one multicast copy of a block in a cell is ``H_cell`` transmissions (the flood
reaches every hop depth once); a unicast copy to meter ``i`` costs ``h_i`` transmissions.
So a block missed by the set ``S`` is repaired by multicast iff::

    sum(h_i for i in S) > H_cell * (1 + margin)

``margin`` (default 0) biases toward unicast, whose delivery is acknowledged per meter.
``proactive_repeats`` applies the same rule before the first NACK round, from the loss the
head-end expects (the ``r`` of architecture.md's multicast formula).
"""

from __future__ import annotations

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


def proactive_repeats(loss: float, hop_sum: float, cell_hops: float, max_repeats: int = 4) -> int:
    """Copies of each block to multicast up front, from the loss the head-end expects.

    The same cost rule, applied before asking: while the meters expected to miss a block
    after ``r`` copies (``loss**r`` of them, weighted by depth: ``loss**r * hop_sum``) would
    cost more by unicast than one more multicast copy (``cell_hops``), send another copy.
    This saves a NACK round in which nearly every meter would answer.
    """
    r = 1
    while r < max_repeats and loss > 0 and loss**r * hop_sum > cell_hops:
        r += 1
    return r


def announce_repeats(loss: float, hop_sum: float, payload_air: float, offer_air: float,
                     max_repeats: int = 5) -> int:
    """Multicast offers to send so that few meters miss them all (each is ~one unicast image).

    A meter that misses every announce joins late and needs the payload by unicast (about
    ``payload_air`` per hop); keep announcing while that expected cost,
    ``loss**k * hop_sum * payload_air``, exceeds one more announce (``offer_air``, on air).
    """
    k = 1
    while k < max_repeats and loss > 0 and loss**k * hop_sum * payload_air > offer_air:
        k += 1
    return k
