"""Upgrade orders: the utility's signed permission for named meters to install one package.

This is Uptane's director role: the vendor's signature says *what* an image is, the order says
*who* may install it *when*. The meter checks signer, validity window against its own clock,
target, package digest, and a per-meter monotonic counter so an order cannot be replayed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from amiup.errors import error
from amiup.trust import cose
from amiup.trust.anchors import TrustAnchors
from amiup.trust.canonical import dumps, loads
from amiup.trust.keys import PrivateKey

ORDER_CTY = "application/amiup-order+cbor"
ACTIVATIONS = ("now", "on-command")
_CODE = "malformed-message"


@dataclass(frozen=True, slots=True)
class UpgradeOrder:
    """What the UMS authorizes; ``activation`` is "now", "on-command" or a unix time."""

    package_digest: bytes
    targets: tuple[str, ...]
    not_before: int
    not_after: int
    counter: int
    groups: tuple[str, ...] = ()
    activation: str | int = "on-command"
    allow_downgrade: bool = False
    issuer: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.package_digest, bytes) or len(self.package_digest) != 32:
            raise error(_CODE, "order package_digest must be 32 bytes")
        if self.not_after < self.not_before:
            raise error("invalid-argument", "order not_after is before not_before")
        if not (self.targets or self.groups) or len(self.targets) + len(self.groups) > 100_000:
            raise error("invalid-argument", "order must name 1..100000 meters or groups")
        if isinstance(self.activation, str) and self.activation not in ACTIVATIONS:
            raise error("invalid-argument", f"activation {self.activation!r}: now|on-command|time")
        if self.counter < 0:
            raise error("invalid-argument", "order counter must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        return {"digest": self.package_digest, "targets": list(self.targets),
                "groups": list(self.groups), "nbf": self.not_before, "exp": self.not_after,
                "activation": self.activation, "downgrade": self.allow_downgrade,
                "counter": self.counter, "issuer": self.issuer}

    @classmethod
    def from_dict(cls, d: Any) -> UpgradeOrder:
        keys = {"digest", "targets", "groups", "nbf", "exp", "activation", "downgrade",
                "counter", "issuer"}
        if not isinstance(d, dict) or set(d) != keys:
            raise error(_CODE, "order has the wrong fields")
        ints = ("nbf", "exp", "counter")
        if not all(isinstance(d[k], int) and not isinstance(d[k], bool) for k in ints):
            raise error(_CODE, "order times and counter must be integers")
        lists = (d["targets"], d["groups"])
        if not all(isinstance(x, list) and all(isinstance(s, str) for s in x) for x in lists):
            raise error(_CODE, "order targets and groups must be lists of strings")
        act = d["activation"]
        if not ((isinstance(act, str) and act in ACTIVATIONS)
                or (isinstance(act, int) and not isinstance(act, bool))):
            raise error(_CODE, "order activation is invalid")
        if not isinstance(d["downgrade"], bool) or not isinstance(d["issuer"], str):
            raise error(_CODE, "order downgrade flag or issuer is invalid")
        try:
            return cls(d["digest"], tuple(d["targets"]), d["nbf"], d["exp"], d["counter"],
                       tuple(d["groups"]), act, d["downgrade"], d["issuer"])
        except Exception as ex:
            code = getattr(ex, "code", None)
            raise error(_CODE, f"order is invalid ({code or ex})") from None


def sign_order(order: UpgradeOrder, utility_key: PrivateKey) -> bytes:
    """COSE_Sign1 of the order by the utility's UMS key."""
    return cose.sign_single(dumps(order.to_dict()), utility_key, ORDER_CTY)


def verify_order(data: bytes, anchors: TrustAnchors, *, meter_id: str, now: float,
                 last_counter: int, meter_groups: tuple[str, ...] = (),
                 package_digest: bytes | None = None, max_size: int = 1 << 20) -> UpgradeOrder:
    """Check an order in the order of trust: signer, signature, then the signed fields."""
    if len(data) > max_size:
        raise error("too-large", f"order of {len(data)} bytes > {max_size}")
    signed = cose.decode_single(data, content_type=ORDER_CTY, code=_CODE)
    key = anchors.find("utility", signed.kid)
    if not signed.check(key):
        raise error("bad-signature", "upgrade order signature does not verify")
    order = UpgradeOrder.from_dict(loads(signed.payload, what="order", code=_CODE))
    if now < order.not_before:
        raise error("order-not-yet-valid", f"valid from {order.not_before}, meter clock {int(now)}")
    if now > order.not_after:
        raise error("order-expired", f"valid until {order.not_after}, meter clock {int(now)}")
    if meter_id not in order.targets and not set(meter_groups) & set(order.groups):
        raise error("order-wrong-target", f"order does not name meter {meter_id!r}")
    if package_digest is not None and package_digest != order.package_digest:
        raise error("order-mismatch", "order names another package")
    if order.counter <= last_counter:
        raise error("order-replayed", f"counter {order.counter} <= last used {last_counter}")
    return order
