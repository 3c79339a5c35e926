"""Head-end <-> meter messages: frozen, slotted dataclasses that validate themselves.

A message that exists is well formed: every constructor checks types, ranges and the caps of
``DEFAULT_LIMITS`` and raises ``malformed-message`` (or ``too-large``) otherwise, so a decoder
can build them straight from untrusted fields. Meaning (signatures, digests, state) is checked
by the meter, not here. The exchange, from architecture.md::

    get_status -> status | running     offer -> accept | reject
    query -> missing                   block, coded (unicast or multicast)
    verify -> verified | failed        activate | cancel -> result
    alarm (meter -> head-end, unsolicited)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from amiup.errors import error
from amiup.wire.bitmap import bitmap_len
from amiup.wire.brief import SHORT_ID_LEN
from amiup.wire.limits import DEFAULT_LIMITS as _L

MAX_TRANSFER = 2**63 - 1
MAX_TIME = 2**40  # unix seconds, far beyond any meter's life


def _int(name: str, value: object, lo: int, hi: int) -> None:
    if type(value) is not int or not lo <= value <= hi:
        raise error("malformed-message", f"{name} must be an integer in {lo}..{hi}")


def _bytes(name: str, value: object, cap: int, *, min_len: int = 0) -> None:
    if type(value) is not bytes:
        raise error("malformed-message", f"{name} must be bytes")
    if len(value) > cap:
        raise error("too-large", f"{name} is {len(value)} bytes, cap {cap}")
    if len(value) < min_len:
        raise error("malformed-message", f"{name} is shorter than {min_len} bytes")


def _text(name: str, value: object, *, cap: int = _L.max_text, empty: bool = False) -> None:
    if type(value) is not str:
        raise error("malformed-message", f"{name} must be text")
    if len(value) > cap:
        raise error("too-large", f"{name} is {len(value)} characters, cap {cap}")
    if not empty and not value:
        raise error("malformed-message", f"{name} must not be empty")


def _opt_text(name: str, value: object) -> None:
    if value is not None:
        _text(name, value)


def _transfer(value: object) -> None:
    _int("transfer", value, 0, MAX_TRANSFER)


@dataclass(frozen=True, slots=True)
class Message:
    """Base of all messages; ``TAG`` is the stable number on the wire."""

    TAG: ClassVar[int] = 0


@dataclass(frozen=True, slots=True)
class GetStatus(Message):
    """Ask the meter for its versions and transfer states; ``nonce`` binds the answer.

    ``component`` narrows the answer to one component (empty: all). ``full`` asks for the
    meter's signed report too (about 1.4 KiB: costly on a mesh, so a delivery read-back
    asks for the brief form unless configured otherwise). ``brief`` (with a component)
    asks for the ~30-byte ``running`` answer instead of ``status``: the multicast read-back
    of a whole cell, where a thousand answers cross up to six hops each. A non-empty
    ``gather_ms`` lets the mesh gather those answers up the routing tree
    (``amiup.network.gather``): a node at hop depth ``d`` waits ``gather_ms[d - 1]``
    milliseconds after the request (deeper nodes less, so their frames are in first), then
    sends its own and its subtree's answers to its parent as one ``gathered`` frame; a node
    deeper than the list sends at once. The head-end sizes the waits from the airtime it
    expects each level's frames to take. A non-empty ``meters`` (packed 4-byte short ids,
    ``amiup.wire.brief``) names the only meters that answer (a poll of the few a cell
    read-back did not hear from); the others stay silent.
    """

    TAG: ClassVar[int] = 1
    nonce: bytes = b""
    component: str = ""
    full: bool = False
    brief: bool = False
    gather_ms: tuple[int, ...] = ()
    meters: bytes = b""

    def __post_init__(self) -> None:
        _bytes("nonce", self.nonce, _L.max_nonce)
        _text("component", self.component, empty=True)
        for name in ("full", "brief"):
            if type(getattr(self, name)) is not bool:
                raise error("malformed-message", f"{name} must be true or false")
        if self.brief and (self.full or not self.component):
            raise error("malformed-message", "a brief status names one component and is not full")
        if type(self.gather_ms) is not tuple or len(self.gather_ms) > 16:
            raise error("malformed-message", "gather_ms must be a tuple of at most 16 waits")
        for wait in self.gather_ms:
            _int("gather_ms", wait, 0, 600_000)
        if self.gather_ms and not self.brief:
            raise error("malformed-message", "only a brief read-back is gathered")
        _ids("meters", self.meters, empty=True)


@dataclass(frozen=True, slots=True)
class ComponentStatus:
    """One component as the meter reports it (running, staged, agent state, transfer)."""

    component: str
    running: str
    staged: str | None = None
    state: str = "idle"
    transfer: int | None = None
    received: int = 0
    block_count: int = 0
    security_seq: int = 0
    code: str | None = None
    sha256: bytes = b""

    def __post_init__(self) -> None:
        _opt_text("code", self.code)
        _bytes("sha256", self.sha256, 32)
        _text("component", self.component)
        _text("running", self.running)
        _opt_text("staged", self.staged)
        _text("state", self.state)
        if self.transfer is not None:
            _transfer(self.transfer)
        _int("block_count", self.block_count, 0, _L.max_blocks)
        _int("received", self.received, 0, self.block_count)
        _int("security_seq", self.security_seq, 0, 2**63 - 1)


@dataclass(frozen=True, slots=True)
class Status(Message):
    """The meter's report: identity, per-component versions and states, order counter.

    ``report`` carries the meter's own signed status report unchanged (nonce-bound), so the
    UMS can check it; the structured fields are what the head-end needs to deliver.
    """

    TAG: ClassVar[int] = 2
    meter_id: str
    nonce: bytes
    time: int
    components: tuple[ComponentStatus, ...]
    order_counter: int = 0
    report: bytes = b""

    def __post_init__(self) -> None:
        _text("meter_id", self.meter_id)
        _bytes("nonce", self.nonce, _L.max_nonce)
        _int("time", self.time, 0, MAX_TIME)
        if type(self.components) is not tuple or not all(
            isinstance(c, ComponentStatus) for c in self.components
        ):
            raise error("malformed-message", "components must be a tuple of ComponentStatus")
        if len(self.components) > _L.max_components:
            raise error("too-large", f"{len(self.components)} components, cap {_L.max_components}")
        _int("order_counter", self.order_counter, 0, 2**63 - 1)
        _bytes("report", self.report, 4096)

    def component(self, name: str) -> ComponentStatus | None:
        """The status of component ``name``, if reported."""
        return next((c for c in self.components if c.component == name), None)


@dataclass(frozen=True, slots=True)
class Offer(Message):
    """Start (or resume) a transfer: the utility's signed order and the vendor-signed header.

    ``header`` is the package's signed header (COSE_Sign holding the manifest) unchanged;
    ``block_size`` is the head-end's proposal (the meter clamps it and answers in accept).
    """

    TAG: ClassVar[int] = 3
    order: bytes
    header: bytes
    block_size: int = 1024

    def __post_init__(self) -> None:
        _bytes("order", self.order, _L.max_order, min_len=1)
        _bytes("header", self.header, _L.max_header, min_len=1)
        _int("block_size", self.block_size, _L.min_block_size, _L.max_block_size)


@dataclass(frozen=True, slots=True)
class Accept(Message):
    """The meter takes the offer; ``missing`` says which blocks it still needs (resume)."""

    TAG: ClassVar[int] = 4
    transfer: int
    component: str
    block_size: int
    block_count: int
    missing: bytes

    def __post_init__(self) -> None:
        _transfer(self.transfer)
        _text("component", self.component)
        _int("block_size", self.block_size, _L.min_block_size, _L.max_block_size)
        _int("block_count", self.block_count, 0, _L.max_blocks)
        _check_bitmap(self.missing, self.block_count)


@dataclass(frozen=True, slots=True)
class Reject(Message):
    """The meter refuses an offer or a command, with a stable error code."""

    TAG: ClassVar[int] = 5
    transfer: int
    code: str
    detail: str = ""

    def __post_init__(self) -> None:
        _transfer(self.transfer)
        _text("code", self.code)
        _text("detail", self.detail, empty=True)


@dataclass(frozen=True, slots=True)
class Block(Message):
    """One block of the payload (unicast or multicast); any copy may arrive, in any order."""

    TAG: ClassVar[int] = 6
    transfer: int
    index: int
    data: bytes

    def __post_init__(self) -> None:
        _transfer(self.transfer)
        _int("index", self.index, 0, _L.max_blocks - 1)
        _bytes("data", self.data, _L.max_block_size, min_len=1)


@dataclass(frozen=True, slots=True)
class Query(Message):
    """Ask which blocks of ``transfer`` are still missing; ``seq`` is echoed in the answer."""

    TAG: ClassVar[int] = 7
    transfer: int
    seq: int = 0

    def __post_init__(self) -> None:
        _transfer(self.transfer)
        _int("seq", self.seq, 0, 2**32 - 1)


@dataclass(frozen=True, slots=True)
class Missing(Message):
    """Answer to ``query``: the bitmap of blocks still needed (``seq`` of the query).

    The head-end acts only on the answer to its latest query, so a late or duplicated
    answer cannot trigger a second copy of a window already on its way. ``have`` counts the
    coded symbols the meter holds that are independent on its missing blocks: it needs
    ``popcount(bitmap) - have`` more symbols (or those many plain blocks) to finish.
    """

    TAG: ClassVar[int] = 8
    transfer: int
    block_count: int
    bitmap: bytes
    seq: int = 0
    have: int = 0

    def __post_init__(self) -> None:
        _transfer(self.transfer)
        _int("seq", self.seq, 0, 2**32 - 1)
        _int("block_count", self.block_count, 0, _L.max_blocks)
        _check_bitmap(self.bitmap, self.block_count)
        _int("have", self.have, 0, self.block_count)

    @property
    def need(self) -> int:
        """Coded symbols (or plain blocks) still needed to complete the transfer."""
        return max(0, sum(bin(b).count("1") for b in self.bitmap) - self.have)


@dataclass(frozen=True, slots=True)
class Verify(Message):
    """Ask the meter to check completeness, size, digest and signature of the image."""

    TAG: ClassVar[int] = 9
    transfer: int
    component: str

    def __post_init__(self) -> None:
        _transfer(self.transfer)
        _text("component", self.component)


@dataclass(frozen=True, slots=True)
class Verified(Message):
    """The staged image verified; ``sha256`` is the digest the meter computed."""

    TAG: ClassVar[int] = 10
    transfer: int
    sha256: bytes

    def __post_init__(self) -> None:
        _transfer(self.transfer)
        _bytes("sha256", self.sha256, 32, min_len=32)


@dataclass(frozen=True, slots=True)
class Failed(Message):
    """Verification (or activation) failed with a stable code; the image was discarded."""

    TAG: ClassVar[int] = 11
    transfer: int
    code: str
    detail: str = ""

    def __post_init__(self) -> None:
        _transfer(self.transfer)
        _text("code", self.code)
        _text("detail", self.detail, empty=True)


@dataclass(frozen=True, slots=True)
class Activate(Message):
    """Activate the verified image now (``at`` is None) or at unix time ``at``."""

    TAG: ClassVar[int] = 12
    transfer: int
    component: str
    at: int | None = None

    def __post_init__(self) -> None:
        _transfer(self.transfer)
        _text("component", self.component)
        if self.at is not None:
            _int("at", self.at, 0, MAX_TIME)


@dataclass(frozen=True, slots=True)
class Cancel(Message):
    """Cancel a transfer or a pending activation."""

    TAG: ClassVar[int] = 13
    transfer: int
    component: str

    def __post_init__(self) -> None:
        _transfer(self.transfer)
        _text("component", self.component)


@dataclass(frozen=True, slots=True)
class Result(Message):
    """Outcome of activate/cancel: the component's running version afterwards."""

    TAG: ClassVar[int] = 14
    transfer: int
    component: str
    running: str
    outcome: str

    def __post_init__(self) -> None:
        _transfer(self.transfer)
        _text("component", self.component)
        _text("running", self.running)
        _text("outcome", self.outcome)


@dataclass(frozen=True, slots=True)
class Alarm(Message):
    """An unsolicited event from the meter (security check failed, reverted, ...)."""

    TAG: ClassVar[int] = 15
    code: str
    detail: str = ""
    time: int = 0

    def __post_init__(self) -> None:
        _text("code", self.code)
        _text("detail", self.detail, empty=True)
        _int("time", self.time, 0, MAX_TIME)


@dataclass(frozen=True, slots=True)
class Coded(Message):
    """Coded symbol ``seq`` of a transfer: a GF(2^8) combination of all its blocks.

    The coefficients follow from (transfer, seq) (``amiup.wire.fec.coefficients``), so only
    the sequence number travels; ``data`` is one block size long (the last block zero-padded).
    Any ``m`` independent symbols repair any ``m`` missing blocks: one multicast symbol helps
    every meter that lacks *some* block, whichever it is.
    """

    TAG: ClassVar[int] = 16
    transfer: int
    seq: int
    data: bytes

    def __post_init__(self) -> None:
        _transfer(self.transfer)
        _int("seq", self.seq, 0, 2**32 - 1)
        _bytes("data", self.data, _L.max_block_size, min_len=_L.min_block_size)


@dataclass(frozen=True, slots=True)
class Running(Message):
    """Brief answer to ``get_status(brief)``: the one component's running version and state.

    The sender is known from the transport (link address, CoAP peer), so no meter id; the
    head-end's nonce (a few bytes for a cell read-back) binds it to the request. ``state``
    is the agent state's code (``amiup.wire.brief.STATES``): one byte instead of its name.
    """

    TAG: ClassVar[int] = 17
    nonce: bytes
    running: str
    state: int

    def __post_init__(self) -> None:
        _bytes("nonce", self.nonce, _L.max_nonce)
        _text("running", self.running)
        _int("state", self.state, 0, 255)


@dataclass(frozen=True, slots=True)
class GatherGroup:
    """Meters of a gathered read-back that run the same version in the same state.

    ``ids`` are the meters' packed 4-byte short ids (``amiup.wire.brief``); ``state`` a
    state code, as in ``running``.
    """

    running: str
    state: int
    ids: bytes

    def __post_init__(self) -> None:
        _text("running", self.running)
        _int("state", self.state, 0, 255)
        _ids("ids", self.ids, empty=False)

    @property
    def count(self) -> int:
        return len(self.ids) // SHORT_ID_LEN


MAX_GATHERED = 512
"""Meters one ``gathered`` frame (or one named poll) may carry: 2 KiB of short ids."""


def _ids(name: str, value: object, *, empty: bool) -> None:
    if type(value) is not bytes or len(value) % SHORT_ID_LEN:
        raise error("malformed-message", f"{name} must be packed {SHORT_ID_LEN}-byte short ids")
    if len(value) > MAX_GATHERED * SHORT_ID_LEN:
        raise error("too-large", f"{len(value) // SHORT_ID_LEN} meters, cap {MAX_GATHERED}")
    if not empty and not value:
        raise error("malformed-message", f"{name} names at least one meter")


@dataclass(frozen=True, slots=True)
class Gathered(Message):
    """Brief read-back answers of a subtree, merged by mesh relays on the way up.

    Grouped by (running, state): after an upgrade nearly every meter is in one group, so
    an answer costs its short id per hop instead of a whole frame per hop. The collector
    splits it back into one ``running`` per meter for the head-end.
    """

    TAG: ClassVar[int] = 18
    nonce: bytes
    groups: tuple[GatherGroup, ...]

    def __post_init__(self) -> None:
        _bytes("nonce", self.nonce, _L.max_nonce)
        if type(self.groups) is not tuple or not all(isinstance(g, GatherGroup) for g in self.groups):
            raise error("malformed-message", "groups must be a tuple of GatherGroup")
        if not self.groups or sum(g.count for g in self.groups) > MAX_GATHERED:
            raise error("malformed-message" if not self.groups else "too-large",
                        f"a gathered frame holds 1..{MAX_GATHERED} meters")

    def answers(self) -> list[tuple[bytes, Running]]:
        """One (short id, running answer) per meter, as if each had answered directly."""
        return [(g.ids[i:i + SHORT_ID_LEN], Running(self.nonce, g.running, g.state))
                for g in self.groups for i in range(0, len(g.ids), SHORT_ID_LEN)]


def _check_bitmap(bitmap: object, block_count: int) -> None:
    _bytes("bitmap", bitmap, _L.max_bitmap)
    assert isinstance(bitmap, bytes)
    if len(bitmap) != bitmap_len(block_count):
        raise error("malformed-message", f"bitmap has {len(bitmap)} bytes for {block_count} blocks")
    spare = bitmap_len(block_count) * 8 - block_count
    if spare and bitmap[-1] >> (8 - spare):
        raise error("malformed-message", "bitmap sets bits past the last block")


MESSAGE_TYPES: dict[int, type[Message]] = {
    cls.TAG: cls
    for cls in (
        GetStatus, Status, Offer, Accept, Reject, Block, Query, Missing,
        Verify, Verified, Failed, Activate, Cancel, Result, Alarm, Coded, Running, Gathered,
    )
}
