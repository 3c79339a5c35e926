"""Gathered read-back on a mesh: the relay function of one node, and the merge/split helpers.

After a multicast upgrade the head-end reads the running version back from every meter of a
cell (UMS-8). Sent directly, each ~30-byte ``running`` answer costs a whole frame (64 bytes of
link headers) on every hop. Gathered (``get_status(gather_ms=N)``), every meter, being a mesh
relay, waits for the answers of its children in the routing tree, merges them with its own
and sends one ``gathered`` frame to its parent: an answer then costs its 4-byte short id per hop
(``amiup.wire.brief``).

Timing: the request names a wait per depth (``gather_ms``, sized by the head-end from the
airtime it expects each level's frames to take: ``amiup.headend.readback``), longest at depth
1, so the deepest nodes flush first and each level's frames are in before its parent's
deadline. A relay that knows its children (``children``; RPL storing mode) flushes as soon as
all of them are in, so the deadline only bounds the wait for a silent child; in non-storing
mode (Wi-SUN FAN) a node knows only its parent and flushes at its deadline. Nothing waits
twice: entries that reach a node after it flushed (or for another read-back) are forwarded at
once, unchanged, as their own frame: less merged, never lost.

Sans-I/O: time is passed in; the caller schedules ``flush`` at ``flush_at`` and sends the
frames it is given. The collector ``split``s a frame back into one ``running`` per meter,
mapping short ids back to meter ids with its cell's roster.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from amiup.errors import error
from amiup.wire import DEFAULT_LIMITS, Gathered, GatherGroup, Running
from amiup.wire.brief import SHORT_ID_LEN, pack, short_id
from amiup.wire.messages import MAX_GATHERED

MAX_BUFFERED = 8 * MAX_GATHERED
"""Entries one node holds for a read-back (a bounded buffer); more are forwarded at once."""


def merge(answers: Iterable[tuple[bytes, Running]], *, cap: int = MAX_GATHERED,
          max_bytes: int = DEFAULT_LIMITS.max_message) -> list[Gathered]:
    """Frames carrying ``answers`` (short id, answer): grouped by (nonce, running, state), at
    most ``cap`` meters and about ``max_bytes`` encoded bytes a frame (512 short ids are 2 KiB,
    but many groups with long version strings could outgrow a message).

    A meter repeated for the same nonce is kept once (the first answer). Order is kept: by
    first appearance of each group, meters in arrival order.
    """
    if not 1 <= cap <= MAX_GATHERED:
        raise error("invalid-argument", f"cap {cap} not in 1..{MAX_GATHERED}")
    groups: dict[bytes, dict[tuple[str, int], list[bytes]]] = {}
    seen: set[tuple[bytes, bytes]] = set()
    for meter, answer in answers:
        if (answer.nonce, meter) in seen:
            continue
        seen.add((answer.nonce, meter))
        groups.setdefault(answer.nonce, {}).setdefault((answer.running, answer.state), []).append(meter)
    frames: list[Gathered] = []
    for nonce, by_state in groups.items():
        fixed = len(nonce) + 16  # array, version, tag, nonce header, groups header, crc
        current: list[GatherGroup] = []
        count, size = 0, fixed
        for (running, state), meters in by_state.items():
            head = len(running.encode()) + 12  # group array, text and ids headers, state
            i = 0
            while i < len(meters):
                room = min(cap - count, (max_bytes - size - head) // SHORT_ID_LEN)
                if room < 1 and current:
                    frames.append(Gathered(nonce, tuple(current)))
                    current, count, size = [], 0, fixed
                    continue
                take = meters[i:i + max(1, room)]
                current.append(GatherGroup(running, state, pack(take)))
                count += len(take)
                size += head + SHORT_ID_LEN * len(take)
                i += len(take)
        if current:
            frames.append(Gathered(nonce, tuple(current)))
    return frames


def split(frame: Gathered, cell: Mapping[bytes, str | None]) -> list[tuple[str, Running]]:
    """One (meter id, ``running``) per meter of ``frame``: what the collector hands up.

    ``cell`` is the collector's roster (``amiup.wire.brief.roster``): short ids it does not
    know, or that two of its meters share, are dropped (the head-end polls those by name).
    """
    return [(m, answer) for sid, answer in frame.answers() if (m := cell.get(sid)) is not None]


@dataclass
class GatherNode:
    """The gathering state of one mesh node (a meter that relays) for one read-back at a time.

    ``depth`` is the node's hop depth, ``cell_depth`` the deepest hop of its cell,
    ``children`` the short ids of its children in the routing tree if known (None: wait for
    the deadline).
    Call ``own`` with the node's answer, ``child`` with each frame from a child, and
    ``flush`` at ``flush_at``; every call returns the frames to send to the parent now.
    """

    meter_id: str
    depth: int
    cell_depth: int
    children: frozenset[bytes] | None = None
    nonce: bytes | None = None
    flush_at: float | None = None
    flushed: bool = False
    discarded: int = 0  # entries of stale read-backs dropped (a new nonce, or going offline)
    forwarded: int = 0  # frames passed up at once, unmerged (late, another nonce, overflow)
    _entries: dict[bytes, tuple[str, int]] = field(default_factory=dict)

    @property
    def sid(self) -> bytes:
        """This node's short id, as its entries carry it."""
        return short_id(self.meter_id)

    @property
    def buffered(self) -> int:
        """Entries waiting for the flush."""
        return len(self._entries)

    def own(self, answer: Running, now: float, wait_s: float) -> list[Gathered]:
        """Record this node's answer; a new nonce starts a new read-back (discarding a stale
        buffer) with its flush ``wait_s`` from ``now`` (the request's wait for this depth,
        ``GetStatus.gather_ms[depth - 1]``: deeper nodes wait less, so they flush first).

        Returns the answer as a frame to send at once if this read-back was already flushed
        (a repeated request): late, so not held back.
        """
        if wait_s < 0:
            raise error("invalid-argument", f"negative gather wait {wait_s}")
        if answer.nonce != self.nonce:
            self.discarded += len(self._entries)
            self.nonce, self.flushed, self._entries = answer.nonce, False, {}
            self.flush_at = now + wait_s
        elif self.flushed:
            self.forwarded += 1
            return merge([(self.sid, answer)])
        self._entries[self.sid] = (answer.running, answer.state)
        return self._flush_if_complete()

    def child(self, frame: Gathered, now: float) -> list[Gathered]:
        """Merge a child's frame into the buffer; returns what must go up at once instead:
        the frame itself when it is late (already flushed) or for another read-back, the
        entries past ``MAX_BUFFERED``, and the whole buffer once every known child is in."""
        if frame.nonce != self.nonce or self.flushed:
            self.forwarded += 1
            return [frame]
        overflow: list[tuple[bytes, Running]] = []
        for meter, answer in frame.answers():
            if meter in self._entries:
                continue  # a duplicated frame: the first copy counts
            if len(self._entries) >= MAX_BUFFERED:
                overflow.append((meter, answer))
            else:
                self._entries[meter] = (answer.running, answer.state)
        late = merge(overflow)
        self.forwarded += len(late)
        return late + self._flush_if_complete()

    def _flush_if_complete(self) -> list[Gathered]:
        kids = self.children
        if not kids or self.sid not in self._entries or not kids <= self._entries.keys():
            return []
        return self._take()

    def flush(self, now: float) -> list[Gathered]:
        """The buffered entries as frames for the parent, once ``now`` reaches ``flush_at``
        (nothing before, and nothing twice)."""
        if self.flush_at is None or now < self.flush_at:
            return []
        return self._take()

    def _take(self) -> list[Gathered]:
        if self.flushed or self.nonce is None:
            return []
        nonce = self.nonce
        entries, self._entries, self.flushed = self._entries, {}, True
        return merge((m, Running(nonce, r, s)) for m, (r, s) in entries.items())

    def drop(self) -> int:
        """Lose the buffer (the node went offline: its RAM is gone); returns entries lost."""
        lost = len(self._entries)
        self.discarded += lost
        self._entries = {}
        if self.nonce is not None:
            self.flushed = True
        return lost
