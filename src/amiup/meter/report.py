"""The meter's signed status report: versions per component, staged images, progress (SM-1).

Signed with the meter's own key (COSE_Sign1) and carrying the UMS's nonce, so the UMS can
tell a fresh report from a replayed or forged one (the Uptane "version report" lesson). The
UMS counts an upgrade done only when it reads the new version back from such a report.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from amiup.errors import error
from amiup.trust import cose
from amiup.trust.canonical import dumps, loads
from amiup.trust.keys import PrivateKey, PublicKey

STATUS_CTY = "application/amiup-status+cbor"
_CODE = "malformed-message"


@dataclass(frozen=True, slots=True)
class ComponentStatus:
    """One component: what runs, what is staged, where its upgrade is."""

    running_version: str
    running_sha256: bytes
    security_seq: int
    staged_version: str | None
    staged_sha256: bytes | None
    state: str
    code: str | None
    transfer_id: int | None
    received: int
    n_blocks: int
    legal_version: str | None
    protocol: str | None


@dataclass(frozen=True, slots=True)
class LocalUpgrade:
    """An upgrade done at the local port, reported so the UMS can reconcile (UMS-10)."""

    seq: int
    time: float
    component: str
    version: str
    tool_id: str
    outcome: str


@dataclass(frozen=True, slots=True)
class StatusReport:
    """Everything the meter reports about itself; ``to_bytes`` signs nothing by itself."""

    meter_id: str
    time: float
    nonce: bytes
    order_counter: int
    log_head: tuple[int, bytes]
    components: dict[str, ComponentStatus]
    legal_version: str | None
    local_upgrades: tuple[LocalUpgrade, ...]
    metrology: dict[str, float]
    signed: bytes = b""

    def to_dict(self) -> dict[str, Any]:
        return {
            "meter_id": self.meter_id, "time": self.time, "nonce": self.nonce,
            "order_counter": self.order_counter, "log_head": list(self.log_head),
            "components": {k: asdict(v) for k, v in self.components.items()},
            "legal_version": self.legal_version,
            "local_upgrades": [asdict(u) for u in self.local_upgrades],
            "metrology": dict(self.metrology),
        }

    def sign(self, key: PrivateKey) -> StatusReport:
        """The same report carrying its COSE_Sign1 bytes."""
        data = cose.sign_single(dumps(self.to_dict()), key, STATUS_CTY)
        return _replace_signed(self, data)

    def to_bytes(self) -> bytes:
        """The signed form (what crosses the network)."""
        if not self.signed:
            raise error("invalid-state", "status report is not signed")
        return self.signed

    def to_json(self) -> dict[str, Any]:
        """JSON-friendly view (bytes as hex) for the CLI and the UMS UI."""
        def conv(v: Any) -> Any:
            if isinstance(v, bytes):
                return v.hex()
            if isinstance(v, dict):
                return {k: conv(x) for k, x in v.items()}
            if isinstance(v, list | tuple):
                return [conv(x) for x in v]
            return v
        out: dict[str, Any] = conv(self.to_dict())
        return out

    @classmethod
    def from_dict(cls, d: Any, signed: bytes = b"") -> StatusReport:
        try:
            comps = {str(k): ComponentStatus(**v) for k, v in d["components"].items()}
            local = tuple(LocalUpgrade(**u) for u in d["local_upgrades"])
            head = (int(d["log_head"][0]), bytes(d["log_head"][1]))
            return cls(str(d["meter_id"]), float(d["time"]), bytes(d["nonce"]),
                       int(d["order_counter"]), head, comps, d["legal_version"], local,
                       {str(k): float(v) for k, v in d["metrology"].items()}, signed)
        except (KeyError, TypeError, ValueError, IndexError) as ex:
            raise error(_CODE, f"status report: {type(ex).__name__}: {ex}") from None

    @classmethod
    def from_bytes(cls, data: bytes) -> StatusReport:
        """Parse a signed report WITHOUT checking it (use ``verify_report`` for that)."""
        signed = cose.decode_single(data, content_type=STATUS_CTY, code=_CODE)
        return cls.from_dict(loads(signed.payload, what="status report", code=_CODE), data)


def _replace_signed(report: StatusReport, data: bytes) -> StatusReport:
    return StatusReport(report.meter_id, report.time, report.nonce, report.order_counter,
                        report.log_head, report.components, report.legal_version,
                        report.local_upgrades, report.metrology, data)


def verify_report(data: bytes, meter_public_key: PublicKey, nonce: bytes) -> StatusReport:
    """Check the meter's signature and that the report answers ``nonce``."""
    signed = cose.decode_single(data, content_type=STATUS_CTY, code=_CODE)
    if not signed.check(meter_public_key):
        raise error("bad-signature", "status report is not signed by this meter's key")
    report = StatusReport.from_dict(loads(signed.payload, what="status report", code=_CODE), data)
    if report.nonce != nonce:
        raise error("report-replayed", "status report answers another nonce")
    return report
