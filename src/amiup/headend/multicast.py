"""Multicast delivery to one cell (sans-I/O): pilot offer, announce, one data round with
erasure-coded repair, coded NACK rounds, then verify and a brief read-back in one step.

Steps, each bounded in time and count:

1. *pilot*: a unicast offer to one meter; its accept gives transfer id, block size, count.
2. *announce*: the offer multicast ``k`` times back to back (``repair.announce_repeats``:
   enough that hardly any meter misses them all and joins late); meters accept silently and
   refuse loudly (reject with a code).
3. *data*: every block multicast once, then ``R`` coded symbols (``coded``, seqs 0..R-1,
   ``repair.coded_repeats``: about ``loss x K`` plus a margin priced against one more
   round), then a ``query``. Any symbol repairs any one missing block of any meter.
4. *NACK rounds*: meters still short answer ``missing`` (bitmap, and ``have``: symbols held;
   ``need`` = what they still lack). Meters missing at most ``fec.MAX_PENDING`` blocks (what a
   meter's decoder holds) are served by ``repair.coded_round``: ``c`` fresh symbols by
   multicast, and unicast symbols (need plus a margin) to the few it flags. Meters missing
   more, and late joiners (a meter that never heard the offer answers ``reject(not-found)``
   and gets the offer by unicast), get plain blocks by the per-block cost rule
   (``repair.multicast_mask``). Then query again; at most ``max_rounds`` rounds.
5. *verify + read-back*: a multicast ``verify`` and, right behind it, a multicast brief
   ``get_status`` (4-byte nonce) in one step, both sent ``verify_repeats`` times (a meter
   answers one read-back once): the meter handles them in order, so failures (``failed``),
   meters still short (``missing``: they did not get enough symbols) and the ``running``
   answers (UMS-8: about 20 bytes each) arrive in one window. A ``running`` with our
   nonce, the delivered version and a final state confirms the meter. Where the transport
   has a routing tree (``gather``), the answers are gathered up the mesh (``gather_ms``,
   waits per depth from ``amiup.headend.readback``): a frame per relay instead of a frame
   per meter per hop. A repair round whose margins leave a meter
   still short unlikely (``repair.still_short``) goes straight to this step.
6. *polls*: up to ``poll_rounds`` times, the verify again and a brief ``get_status`` naming
   the meters not heard from, and those still short, by short id (``amiup.wire.brief``; at
   most ``MAX_GATHERED`` a request); they answer directly. Meters that answered the verify
   ``missing`` and lack at most ``poll_repair_max`` symbols are repaired first, in the same
   burst (``repair.coded_round``): a short meter costs its symbols, not a unicast session.
7. *sessions*: every other meter (silent, incomplete, not yet final: trial, scheduled)
   gets a unicast session: it resumes (``failed(transfer-incomplete)`` or ``running`` state
   receiving), verifies (state received: it missed the verify) or reads back and polls;
   its deadline counts the airtime of what it just sent (``SessionConfig.drain_s_per_byte``).
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from amiup.headend.readback import gather_waits
from amiup.headend.repair import (
    announce_repeats,
    coded_repeats,
    coded_round,
    multicast_mask,
    short_probability,
    still_short,
)
from amiup.headend.session import FRAME_OVERHEAD, REOFFER, Delivery, SessionConfig, UnicastSession
from amiup.headend.session import Phase as SessionPhase
from amiup.wire import (
    Accept,
    Block,
    Coded,
    Failed,
    Gathered,
    GatherGroup,
    GetStatus,
    Message,
    Missing,
    Offer,
    Query,
    Reject,
    Running,
    Verify,
    bitmap_len,
    decode_bitmap,
    encode,
)
from amiup.wire.brief import SHORT_ID_LEN, state_code, state_name
from amiup.wire.brief import names as brief_names
from amiup.wire.fec import MAX_PENDING, Encoder
from amiup.wire.messages import MAX_GATHERED

Dest = str | None  # a meter id, or None for the whole cell (multicast)
Out = list[tuple[Dest, Message]]
Phase = Literal["pilot", "rounds", "verify", "poll", "sessions", "done"]

DEFAULT_CAPACITY = 14_000.0
"""Bytes per second of a cell when the transport gives no drain rate (rf-mesh: 150 kbps at
75% usable): prices a round's wait in airtime for the coded-repair rule."""
COMMITTED = ("committed", "idle")
COMMITTED_CODE = state_code("committed")
STATUS_AIR = 150 + FRAME_OVERHEAD
"""Bytes on air of a (brief, one-component) status answer, for pacing follow-up sessions."""


def _session_config() -> SessionConfig:
    # a short timeout (the deadline adds the drain of what was sent), and the patience to
    # match: 8 retries with backoff outlast a 30%-loss link without a retry_after_s pause
    return SessionConfig(timeout_s=3.0, max_retries=8)


@dataclass(frozen=True, slots=True)
class MulticastConfig:
    """Repeats, waits and the cost-rule margin of one cell's multicast.

    ``round_wait_s`` comes on top of the drain of what was sent, of the answers expected
    and of the round trip to the deepest meter (``hop_latency_s`` each way per hop), so it
    only covers the meters' turnaround and jitter. A second copy of the verify and read-back
    request costs two small frames; each meter that misses both would cost a poll entry and
    a direct answer over its hops, so two copies pay at any loss above a fraction of a
    percent. Follow-up sessions (``session``) wait 3 s plus the airtime of what they sent
    (the cell is quiet by then), doubling up to 8 retries. A poll round waits the round
    trip plus ``round_wait_s`` (under a second on rf-mesh), a fifth of a session's first
    timeout: hence up to five polls before sessions.
    """

    announce_repeats: int | None = None  # None: by the cost rule (repair.announce_repeats)
    expected_loss: float = 0.0  # the head-end's estimate; sets the coded symbols up front
    round_wait_s: float = 0.3
    max_rounds: int = 8
    margin: float = 0.0
    pilot_timeout_s: float = 10.0
    pilot_retries: int = 3
    session: SessionConfig = field(default_factory=_session_config)
    session_concurrency: int | None = None  # None: what the cell drains within a timeout
    gather: bool = False  # the transport gathers read-back answers up a routing tree
    hop_latency_s: float = 0.05  # per hop, for the gathered read-back's waits
    poll_rounds: int = 5  # named brief read-backs of the silent before unicast sessions
    verify_repeats: int = 2  # copies of the cell's verify + read-back (each ~90 bytes x H)
    poll_repair_max: int = 8  # symbols a poll round repairs a short meter by; more: a session


@dataclass
class CellMulticast:
    """Deliver one package to the meters of one cell; ``hops`` maps meter id -> depth.

    ``drain_s_per_byte`` is the transport's estimate of how long a byte on air takes to
    leave (airtime at the cell's budget); the cell waits for its burst to drain plus
    ``round_wait_s`` for answers before deciding the next round.
    """

    hops: dict[str, int]
    delivery: Delivery
    config: MulticastConfig = field(default_factory=MulticastConfig)
    drain_s_per_byte: float = 0.0
    phase: Phase = "pilot"
    transfer: int | None = None
    block_size: int = 0
    block_count: int = 0
    deadline: float | None = None
    rounds: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    sessions: dict[str, UnicastSession] = field(default_factory=dict)
    multicast_blocks: int = 0  # plain blocks sent by multicast (the data round's K included)
    unicast_blocks: int = 0
    multicast_coded: int = 0  # coded symbols sent by multicast
    unicast_coded: int = 0  # coded symbols sent by unicast (each copy counted)
    query_seq: int = 0
    confirmed: dict[str, float] = field(default_factory=dict)
    loss: float = 0.0  # the loss the repair rules use: expected, or seen in the data round
    _pilots: list[str] = field(default_factory=list)
    _pilot_tries: int = 0
    _nacks: dict[str, tuple[set[int], int]] = field(default_factory=dict)  # missing, need
    _incomplete: set[str] = field(default_factory=set)
    _short: dict[str, tuple[set[int], int]] = field(default_factory=dict)  # verify said missing
    _reoffers: dict[str, int] = field(default_factory=dict)
    _nonce: bytes = b""
    _nonces: set[bytes] = field(default_factory=set)  # every read-back and poll of this cell
    polls: int = 0
    _states: dict[str, str] = field(default_factory=dict)  # read-back answers not yet final
    _queue: list[tuple[str, SessionPhase]] = field(default_factory=list)  # sessions to start
    _encoder: Encoder | None = None
    _next_seq: int = 0

    @property
    def cell_hops(self) -> int:
        return max(self.hops.values(), default=1)

    @property
    def rtt_s(self) -> float:
        """Round trip to the deepest meter of the cell."""
        return 2.0 * self.cell_hops * self.config.hop_latency_s

    @property
    def mean_hops(self) -> float:
        return sum(self.hops.values()) / max(1, len(self.hops))

    @property
    def done(self) -> bool:
        return self.phase == "done"

    def results(self) -> dict[str, tuple[str | None, float | None]]:
        """Per meter: (failure code or None, confirm time or None)."""
        out: dict[str, tuple[str | None, float | None]] = {m: (c, None) for m, c in self.failed.items()}
        out.update({m: (None, t) for m, t in self.confirmed.items()})
        for m, s in self.sessions.items():
            if m not in out:
                out[m] = (s.code, s.confirmed_at)
        return out

    # ------------------------------------------------------------------ driving
    def start(self, now: float) -> Out:
        self._pilots = sorted(self.hops, key=lambda m: (self.hops[m], m))
        return self._pilot(now)

    def _pilot(self, now: float) -> Out:
        while self._pilots and self._pilots[0] in self.failed:
            self._pilots.pop(0)
        if not self._pilots:
            self.phase, self.deadline = "done", None
            return []
        self.deadline = now + self.config.pilot_timeout_s
        d = self.delivery
        return [(self._pilots[0], Offer(d.order, d.header, d.block_size))]

    def _air(self, msg: Message) -> int:
        """Bytes on air of one frame carrying ``msg`` (one hop)."""
        return len(encode(msg)) + FRAME_OVERHEAD

    def _drain(self, out: Out) -> float:
        size = 0.0
        for dest, msg in out:
            h = self.cell_hops if dest is None else self.hops.get(dest, 1)
            size += self._air(msg) * h
        return size * self.drain_s_per_byte

    def _wait(self, out: Out, now: float, answers: float = 0.0, answer_bytes: int = 0) -> Out:
        """Wait for ``out`` to leave, for about ``answers`` replies to come back, and a bit."""
        back = answers * (answer_bytes + FRAME_OVERHEAD) * self.mean_hops * self.drain_s_per_byte
        self.deadline = now + self._drain(out) + back + self.rtt_s + self.config.round_wait_s
        return out

    def receive(self, meter: str, msg: Message, now: float) -> Out:
        """A message from ``meter`` of this cell."""
        if isinstance(msg, Running) and msg.nonce in self._nonces:
            self._running(meter, msg, now)  # the read-back's answer, maybe late
            return self._admit(now) if self.phase == "sessions" else []
        if self.phase == "sessions" or meter in self.sessions:
            s = self.sessions.get(meter)
            out: Out = [(meter, m) for m in s.receive(msg, now)] if s else []
            return out + self._admit(now)
        if self.phase == "pilot":
            if meter != (self._pilots[0] if self._pilots else None):
                return []
            if isinstance(msg, Accept):
                return self._announce(msg, now)
            if isinstance(msg, Reject):
                if msg.code in REOFFER and self._retry(meter):
                    return self._pilot(now)
                self.failed[meter] = msg.code
                self._pilot_tries = 0
                return self._pilot(now)
            return []
        if isinstance(msg, Reject):
            if msg.code in REOFFER and self.phase == "rounds" and self._retry(meter):
                d = self.delivery  # never heard the offer, or heard a damaged copy
                return [(meter, Offer(d.order, d.header, d.block_size))]
            if msg.transfer in (0, self.transfer) and msg.code not in REOFFER:
                self.failed[meter] = msg.code
            return []
        if isinstance(msg, Accept) and msg.transfer == self.transfer:
            missing = set(decode_bitmap(msg.missing, msg.block_count))
            if missing:  # a late joiner: plain blocks (it holds no symbols yet)
                self._nacks[meter] = (missing, len(missing))
            return []
        if isinstance(msg, Missing) and msg.transfer == self.transfer and self.phase == "rounds":
            if msg.block_count == self.block_count and msg.seq == self.query_seq:
                self._nacks[meter] = (set(decode_bitmap(msg.bitmap, msg.block_count)), msg.need)
            return []
        if isinstance(msg, Missing) and msg.transfer == self.transfer and msg.seq == 0 \
                and self.phase in ("verify", "poll"):
            # the verify found it short (seq 0; a late NACK of a round carries its query's seq)
            missing = set(decode_bitmap(msg.bitmap, msg.block_count))
            if missing and msg.block_count == self.block_count and meter not in self.failed:
                self._short[meter] = (missing, max(1, msg.need))
            return []
        if isinstance(msg, Failed) and msg.transfer == self.transfer and self.phase in ("verify", "poll"):
            if msg.code == "transfer-incomplete":
                self._incomplete.add(meter)
            elif msg.code != "invalid-state":  # e.g. never heard the offer: read-back decides
                self.failed[meter] = msg.code
            return []
        return []

    def postpone(self, until: float) -> None:
        """A delivery window closed: push every wait to ``until`` plus its own length."""
        if self.deadline is not None:
            self.deadline = until + self.rtt_s + self.config.round_wait_s
        for s in self.sessions.values():
            if s.deadline is not None and not s.done:
                s.deadline = until + s.config.timeout_s

    def _running(self, meter: str, msg: Running, now: float) -> None:
        if meter in self.failed:
            return
        if not (msg.running == self.delivery.version and state_name(msg.state) in COMMITTED):
            self._states[meter] = state_name(msg.state)
            return
        s = self.sessions.get(meter)
        if s is None:
            self.confirmed.setdefault(meter, now)
            self._queue = [(m, at) for m, at in self._queue if m != meter]  # not needed now
        elif s.phase in ("readback", "wait") and not s.done:  # its own read-back is now redundant
            s.phase, s.deadline, s.confirmed_at = "done", None, now

    def _retry(self, meter: str) -> bool:
        self._reoffers[meter] = self._reoffers.get(meter, 0) + 1
        return self._reoffers[meter] <= self.config.session.max_reoffers

    def expire(self, now: float) -> Out:
        """The current wait is over: decide the next step."""
        if self.deadline is None or now < self.deadline:
            return []
        if self.phase == "pilot":
            self._pilot_tries += 1
            if self._pilot_tries > self.config.pilot_retries and self._pilots:
                self._pilot_tries = 0
                self._pilots.append(self._pilots.pop(0))  # try another meter first
            return self._pilot(now)
        if self.phase == "rounds":
            return self._round(now)
        if self.phase in ("verify", "poll"):
            return self._poll(now)
        if self.phase == "sessions":
            out: Out = []
            for m, s in self.sessions.items():
                out += [(m, x) for x in s.expire(now)]
            return out + self._admit(now)
        return []

    @property
    def next_deadline(self) -> float | None:
        if self.phase == "sessions":
            times = [s.deadline for s in self.sessions.values() if s.deadline is not None and not s.done]
            return min(times) if times else None
        return self.deadline

    # ------------------------------------------------------------------ airtime prices
    def _coded_air(self) -> int:
        """Bytes on air of one coded symbol (one hop)."""
        return len(encode(Coded(self.transfer or 0, self._next_seq + 1000, bytes(self.block_size)))) \
            + FRAME_OVERHEAD

    def _missing_air(self) -> int:
        return 24 + bitmap_len(self.block_count) + FRAME_OVERHEAD

    def _round_air(self) -> float:
        """A NACK round's cost in airtime-equivalent bytes: its wait at the cell's capacity
        (the airtime the cell could have carried meanwhile) plus the query to every hop."""
        capacity = 1.0 / self.drain_s_per_byte if self.drain_s_per_byte > 0 else DEFAULT_CAPACITY
        query = self._air(Query(self.transfer or 0, self.query_seq + 1))
        return (self.rtt_s + self.config.round_wait_s) * capacity + query * self.cell_hops

    def _symbols(self, count: int) -> list[tuple[int, bytes]]:
        """``count`` fresh coded symbols (seq, data): never sent before in this transfer."""
        assert self._encoder is not None
        first, self._next_seq = self._next_seq, self._next_seq + count
        return [(q, self._encoder.symbol(q)) for q in range(first, first + count)]

    # ------------------------------------------------------------------ steps
    def _announce(self, acc: Accept, now: float) -> Out:
        self.transfer, self.block_size, self.block_count = acc.transfer, acc.block_size, acc.block_count
        self.phase = "rounds"
        d = self.delivery
        blocks = [d.block(i, acc.block_size) for i in range(acc.block_count)]
        self._encoder = Encoder(acc.transfer, blocks, acc.block_size) if blocks else None
        offer = Offer(d.order, d.header, d.block_size)
        n = len(self.hops)
        self.loss = self.config.expected_loss
        announces = self.config.announce_repeats or announce_repeats(max(self.loss, 0.002), n)
        out: Out = [(None, offer)] * announces
        out += [(None, Block(acc.transfer, i, b)) for i, b in enumerate(blocks)]
        self.multicast_blocks += len(blocks)
        extra = coded_repeats(self.loss, acc.block_count, n, self._coded_air() * self.cell_hops,
                              self._round_air(), self.mean_hops * self._missing_air()) if blocks else 0
        out += [(None, Coded(acc.transfer, q, data)) for q, data in self._symbols(extra)]
        self.multicast_coded += extra
        self.query_seq += 1
        out.append((None, Query(acc.transfer, self.query_seq)))
        short = n * short_probability(self.loss, acc.block_count, extra)
        return self._wait(out, now, short, self._missing_air() - FRAME_OVERHEAD)

    def _observe_loss(self, nacks: dict[str, tuple[set[int], int]]) -> None:
        """After the data round: the block loss the answers show, if worse than expected.

        Meters that lost nothing stay silent; count them as lossless (an underestimate, as
        lost answers are): the rules then err toward one more round, not toward waste.
        """
        members = max(1, len(self.hops) - len(self.failed))
        lost = sum(len(miss) for miss, _need in nacks.values())
        if self.block_count:
            self.loss = max(self.loss, min(0.5, lost / (members * self.block_count)))

    def _round(self, now: float) -> Out:
        assert self.transfer is not None
        nacks = {m: v for m, v in self._nacks.items() if v[0] and m not in self.failed}
        self._nacks = {}
        self.rounds += 1
        if self.rounds == 1:
            self._observe_loss(nacks)
        if not nacks or self.rounds > self.config.max_rounds:
            return self._verify(now)
        out: Out = []
        codable = sorted(m for m, (miss, need) in nacks.items() if len(miss) <= MAX_PENDING and need > 0)
        plain = sorted(m for m, (miss, _need) in nacks.items() if len(miss) > MAX_PENDING)
        repair, settled = self._coded_repair(codable, {m: nacks[m][1] for m in codable})
        out += repair + self._plain_repair(plain, {m: nacks[m] for m in plain})
        if not out or (settled and not plain):  # nothing more is likely missing: verify
            return self._verify(now, out)
        self.query_seq += 1
        out.append((None, Query(self.transfer, self.query_seq)))
        expect = len(nacks) * min(1.0, 2 * self.loss)
        return self._wait(out, now, expect, self._missing_air() - FRAME_OVERHEAD)

    def _coded_repair(self, meters: list[str], needs: dict[str, int]) -> tuple[Out, bool]:
        """Coded symbols: ``c`` by multicast for most, need plus a margin by unicast for few.

        Also says whether the margins leave a meter still short unlikely (expected < 0.5).
        """
        if not meters:
            return [], True
        assert self.transfer is not None
        symbol = float(self._coded_air())
        per_round = self._round_air() / symbol
        per_answer = self._missing_air() / symbol
        need = np.array([needs[m] for m in meters], dtype=np.int64)
        hops = np.array([self.hops.get(m, 1) for m in meters], dtype=np.float64)
        c, uni = coded_round(need, hops, self.cell_hops, self.loss, per_round, per_answer)
        out: Out = [(None, Coded(self.transfer, q, data)) for q, data in self._symbols(c)]
        self.multicast_coded += c
        counts = {m: int(n) + coded_repeats(self.loss, int(n), 1, 1.0, per_round, per_answer)
                  for m, n, u in zip(meters, need, uni, strict=True) if u}
        if counts:  # one range of fresh symbols: each meter takes the first ``count`` of it
            fresh = self._symbols(max(counts.values()))
            for m, k in counts.items():
                out += [(m, Coded(self.transfer, q, data)) for q, data in fresh[:k]]
                self.unicast_coded += k
        short = still_short(need[~uni], c, self.loss) + sum(
            short_probability(self.loss, int(n), k - int(n)) for n, k in
            ((needs[m], counts[m]) for m in counts))
        return out, short < 0.5

    def _plain_repair(self, meters: list[str], nacks: dict[str, tuple[set[int], int]]) -> Out:
        """Plain blocks for meters missing more than a decoder holds: the per-block rule.

        A meter that holds ``have`` symbols needs only ``need`` of its missing blocks: the
        symbols solve the rest. It gets its lowest-numbered ones, so meters that lost
        overlapping stretches share the multicast copies.
        """
        if not meters:
            return []
        assert self.transfer is not None
        matrix = np.zeros((len(meters), self.block_count), dtype=bool)
        for r, m in enumerate(meters):
            missing, need = nacks[m]
            matrix[r, sorted(missing)[:max(1, need)]] = True
        hops = np.array([self.hops.get(m, 1) for m in meters])
        mc = multicast_mask(matrix, hops, self.cell_hops, self.config.margin)
        d = self.delivery
        out: Out = [(None, Block(self.transfer, int(i), d.block(int(i), self.block_size)))
                    for i in np.flatnonzero(mc)]
        self.multicast_blocks += len(out)
        for r, m in enumerate(meters):
            for i in np.flatnonzero(matrix[r] & ~mc):
                out.append((m, Block(self.transfer, int(i), d.block(int(i), self.block_size))))
                self.unicast_blocks += 1
        return out

    def _verify(self, now: float, before: Out | None = None) -> Out:
        """Multicast verify and, right behind it, the brief read-back: one window for both.

        ``before``: a last repair burst to send first (the meter handles frames in order).
        """
        assert self.transfer is not None
        self.phase = "verify"
        self._nonce = self._fresh_nonce(now)
        out: Out = list(before or [])
        verify = Verify(self.transfer, self.delivery.component)
        copies = max(1, self.config.verify_repeats)
        if self.config.gather and self.cell_hops > 1:
            frame = Gathered(self._nonce, (GatherGroup(self.delivery.version, COMMITTED_CODE,
                                                       bytes(SHORT_ID_LEN)),))
            waits = gather_waits(self.hops.values(), self._air(frame), SHORT_ID_LEN,
                                 self.drain_s_per_byte, self.config.hop_latency_s)
            ask = GetStatus(self._nonce, self.delivery.component, brief=True, gather_ms=waits)
            out += [(None, verify), (None, ask)] * copies
            per_id = SHORT_ID_LEN
            # the deepest waits ran out by depth 1's deadline; then depth 1's own frames leave
            level_1 = self._air(frame) * sum(h == 1 for h in self.hops.values()) \
                + per_id * len(self.hops)
            self.deadline = now + self._drain(out) + waits[0] / 1000.0 \
                + level_1 * self.drain_s_per_byte + self.rtt_s + self.config.round_wait_s
            return out
        out += [(None, verify), (None, GetStatus(self._nonce, self.delivery.component, brief=True))] * copies
        answer = len(encode(Running(self._nonce, self.delivery.version, COMMITTED_CODE)))
        return self._wait(out, now, len(self.hops) - len(self.failed), answer)

    def _fresh_nonce(self, now: float) -> bytes:
        nonce = hashlib.sha256(f"{self.transfer}/{now}/{self.rounds}/{self.polls}".encode()).digest()[:4]
        self._nonces.add(nonce)
        return nonce

    def _silent(self) -> list[str]:
        """Meters neither confirmed, failed, incomplete nor heard from with a state."""
        return [m for m in sorted(self.hops) if m not in self.confirmed and m not in self.failed
                and m not in self._incomplete and m not in self._states and m not in self._short]

    def _poll(self, now: float) -> Out:
        """Repair the meters the verify found short (if a few symbols do it), then ask them
        and the silent meters again, by short id (verify first: some missed it); or go on."""
        short = {m: v for m, v in self._short.items() if m not in self.confirmed and m not in self.failed}
        self._short = {}
        fixable = sorted(m for m, (miss, need) in short.items()
                         if need <= self.config.poll_repair_max and len(miss) <= MAX_PENDING)
        self._incomplete.update(m for m in short if m not in fixable)  # a session resumes them
        names = sorted(set(self._silent()) | set(fixable))  # a short meter may also be silent
        if not names or self.polls >= self.config.poll_rounds:
            self._incomplete.update(fixable)
            return self._sessions(now)
        assert self.transfer is not None
        self.phase = "poll"
        self.polls += 1
        self._nonce = self._fresh_nonce(now)
        for m in fixable:
            self._states.pop(m, None)  # it answered "receiving": ask again once repaired
        out, _settled = self._coded_repair(fixable, {m: short[m][1] for m in fixable})
        out.append((None, Verify(self.transfer, self.delivery.component)))
        for i in range(0, len(names), MAX_GATHERED):
            ids = brief_names(names[i:i + MAX_GATHERED])
            out.append((None, GetStatus(self._nonce, self.delivery.component, brief=True, meters=ids)))
        answer = len(encode(Running(self._nonce, self.delivery.version, COMMITTED_CODE)))
        return self._wait(out, now, len(names), answer)

    def _sessions(self, now: float) -> Out:
        """Every meter not confirmed nor failed gets a unicast session, a few at a time."""
        self.phase = "sessions"
        for m in sorted(self.hops):
            if m in self.failed or m in self.confirmed:
                continue
            state = self._states.get(m)
            at: SessionPhase = "readback"  # silent: ask first
            if m in self._incomplete or state == "receiving":
                at = "offer"  # resume: its accept says which blocks are missing
            elif state == "received":
                at = "verify"  # complete but missed the verify
            self._queue.append((m, at))
        return self._admit(now)

    def _concurrency(self) -> int:
        """Sessions at once: as many exchanges as the cell carries within one timeout.

        Started all at once, a few hundred requests and answers queue for longer than a
        session waits: they would time out in the queue and be sent again."""
        if self.config.session_concurrency is not None:
            return max(1, self.config.session_concurrency)
        capacity = 1.0 / self.drain_s_per_byte if self.drain_s_per_byte > 0 else DEFAULT_CAPACITY
        ask = self._air(GetStatus(bytes(16), self.delivery.component))
        exchange = (ask + STATUS_AIR) * self.mean_hops
        return max(4, int(self.config.session.timeout_s * capacity / (2 * exchange)))

    def _admit(self, now: float) -> Out:
        cfg = self.config.session
        if cfg.drain_s_per_byte == 0.0 and self.drain_s_per_byte > 0.0:
            cfg = dataclasses.replace(cfg, drain_s_per_byte=self.drain_s_per_byte)
        out: Out = []
        running = sum(not s.done for s in self.sessions.values())
        room = self._concurrency() - running
        while self._queue and room > 0:
            m, at = self._queue.pop(0)
            s = UnicastSession(m, self.delivery, cfg, hops=self.hops[m])
            s.transfer, s.block_size, s.block_count = self.transfer, self.block_size, self.block_count
            self.sessions[m] = s
            out += [(m, x) for x in s.start(now, at=at)]
            room -= not s.done
        self._check_done()
        return out

    def _check_done(self) -> None:
        if self.phase == "sessions" and not self._queue and all(s.done for s in self.sessions.values()):
            self.phase, self.deadline = "done", None
