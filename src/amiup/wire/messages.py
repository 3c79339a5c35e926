"""Head-end <-> meter messages: frozen, slotted dataclasses that validate themselves.

A message that exists is well formed: every constructor checks types, ranges and the caps of
``DEFAULT_LIMITS`` and raises ``malformed-message`` (or ``too-large``) otherwise, so a decoder
can build them straight from untrusted fields. Meaning (signatures, digests, state) is checked
by the meter, not here. The exchange, from architecture.md::

    get_status -> status
    offer -> accept | reject           query -> missing
    block (unicast or multicast)       verify -> verified | failed
    activate | cancel -> result        alarm (meter -> head-end, unsolicited)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from amiup.errors import error
from amiup.wire.bitmap import bitmap_len
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
    asks for the brief form unless configured otherwise).
    """

    TAG: ClassVar[int] = 1
    nonce: bytes = b""
    component: str = ""
    full: bool = False

    def __post_init__(self) -> None:
        _bytes("nonce", self.nonce, _L.max_nonce)
        _text("component", self.component, empty=True)
        if type(self.full) is not bool:
            raise error("malformed-message", "full must be true or false")


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
    answer cannot trigger a second copy of a window already on its way.
    """

    TAG: ClassVar[int] = 8
    transfer: int
    block_count: int
    bitmap: bytes
    seq: int = 0

    def __post_init__(self) -> None:
        _transfer(self.transfer)
        _int("seq", self.seq, 0, 2**32 - 1)
        _int("block_count", self.block_count, 0, _L.max_blocks)
        _check_bitmap(self.bitmap, self.block_count)


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
        Verify, Verified, Failed, Activate, Cancel, Result, Alarm,
    )
}
