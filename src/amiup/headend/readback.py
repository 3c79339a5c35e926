"""Cell read-back planning: when each hop depth sends its gathered answers up the mesh.

A gathered read-back (``GetStatus.gather_ms``, ``amiup.network.gather``) asks every meter
to answer its parent in the routing tree, and every relay to merge its subtree's answers
into one frame. A relay must not send before its children's frames are in, yet every
second it waits is a second the cell is not confirmed. The head-end knows how many meters
sit at each depth, so it can size the waits: depth ``d`` waits for the airtime of all the
frames of the depths below it (``sum over j > d`` of ``n_j`` frames carrying the answers
of everything at depth ``>= j``), with a margin, plus three hop latencies per level. Levels are uneven (most
meters sit at depths 2-3), so per-depth waits beat one per-level slot sized for the
busiest level.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable


def level_airtime(hops: Iterable[int], frame: float, per_meter: float) -> dict[int, float]:
    """Bytes on air of the gathered frames sent by each depth (one hop to the parent each).

    ``frame``: bytes on air of a gathered frame holding one answer; ``per_meter``: each
    further answer (a meter id).
    """
    count = Counter(int(h) for h in hops)
    out: dict[int, float] = {}
    below = 0
    for depth in sorted(count, reverse=True):
        below += count[depth]  # answers of this depth and all deeper ones pass this level
        out[depth] = count[depth] * frame + (below - count[depth]) * per_meter
    return out


MARGIN = 1.1
"""Slack on the expected airtime: frames of a level queue behind stragglers of the level below
and behind other traffic; a wait too short makes entries late (a frame per hop each)."""


def gather_waits(hops: Iterable[int], frame: float, per_meter: float, s_per_byte: float,
                 hop_latency_s: float) -> tuple[int, ...]:
    """``GetStatus.gather_ms`` for a cell: the wait of each depth 1..H, in milliseconds."""
    air = level_airtime(hops, frame, per_meter)
    if not air:
        return ()
    deepest = max(air)
    waits = []
    for depth in range(1, deepest + 1):
        below = sum(a for d, a in air.items() if d > depth) * s_per_byte
        waits.append(round(1000.0 * (MARGIN * below + 3.0 * hop_latency_s * (deepest - depth))))
    return tuple(waits)
