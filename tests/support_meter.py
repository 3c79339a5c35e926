"""Shared helpers for the meter tests: keys, a provisioned meter, packages, orders, drivers.

Keys are generated per process (never stored); everything else is built with the real
package and order code, so tests attack the real verification path.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from amiup.meter import Accept, MemoryStorage, Meter, MeterConfig, make_image, provision
from amiup.meter.storage import Storage
from amiup.package import (
    LegalInfo,
    UpgradeOrder,
    build_package,
    decode_package,
    manifest_digest,
    sign_order,
)
from amiup.trust import PrivateKey, TrustAnchors, generate_key

SERIAL = "MTR-0001"
VENDOR = "acme"
MODEL = "AX-1"
HW_REV = "B"
T0 = 1_800_000_000.0


@functools.cache
def keys() -> dict[str, PrivateKey]:
    """vendor, utility, other vendor/utility, meter, root (one set per test process)."""
    return {name: generate_key() for name in ("vendor", "utility", "vendor2", "utility2",
                                              "meter", "root")}


def anchors() -> TrustAnchors:
    k = keys()
    return TrustAnchors.create(vendor=[k["vendor"].public_key()],
                               utility=[k["utility"].public_key()], root=[k["root"].public_key()])


def new_meter(storage: Storage | None = None, *, now: float = T0, image_size: int = 4096,
              config: MeterConfig | None = None, versions: dict[str, str] | None = None,
              groups: tuple[str, ...] = ("north",)) -> Meter:
    storage = storage if storage is not None else MemoryStorage()
    provision(storage, serial=SERIAL, vendor=VENDOR, model=MODEL, hw_rev=HW_REV,
              anchors=anchors(), groups=groups, versions=versions, image_size=image_size,
              meter_key=keys()["meter"], now=now)
    meter = Meter(storage, config)
    meter.boot(now)
    return meter


def package(component: str, version: str, seq: int, *, image: bytes | None = None,
            size: int = 4096, fault: Any = None, delta_from: bytes | None = None,
            encrypt: bool = False, sign_key: str = "vendor", model: str = MODEL,
            hw_revs: Sequence[str] = (HW_REV,), vendor: str = VENDOR,
            requires: Sequence[str] = (), protocol: str | None = None) -> bytes:
    """A real signed package for the test meter."""
    image = image if image is not None else make_image(component, version, size=size,
                                                        fault=fault)
    legal = LegalInfo("PTB-22.1", f"L{version}") if component == "metrology" else None
    if protocol is None and component in ("ami_comm", "han_comm"):
        protocol = f"{component}-proto-{version}"
    return build_package(image, component=component, version=version, security_seq=seq,
                         vendor=vendor, model=model, hw_revs=hw_revs,
                         sign_keys=[keys()[sign_key]], requires=requires,
                         delta_from=delta_from, legal=legal, protocol=protocol,
                         encrypt_for=[keys()["meter"].public_key()] if encrypt else (),
                         created=int(T0))


@dataclass
class Orders:
    """Issues utility orders with a growing counter, like the UMS does per meter."""

    counter: int = 0
    key: str = "utility"
    issued: list[bytes] = field(default_factory=list)

    def order(self, pkg: bytes, *, now: float = T0, activation: str | int = "on-command",
              allow_downgrade: bool = False, targets: tuple[str, ...] = (SERIAL,),
              groups: tuple[str, ...] = (), not_before: float | None = None,
              not_after: float | None = None, counter: int | None = None) -> bytes:
        digest = manifest_digest(decode_package(pkg).manifest_bytes)
        self.counter = counter if counter is not None else self.counter + 1
        o = UpgradeOrder(digest, targets,
                         int(now - 60 if not_before is None else not_before),
                         int(now + 86400 if not_after is None else not_after), self.counter,
                         groups, activation, allow_downgrade, "ums-test")
        data = sign_order(o, keys()[self.key])
        self.issued.append(data)
        return data


def header(pkg: bytes) -> bytes:
    return decode_package(pkg).signed_header


def payload(pkg: bytes) -> bytes:
    return decode_package(pkg).payload


def send_blocks(meter: Meter, acc: Accept, data: bytes, now: float,
                indices: Sequence[int] | None = None) -> None:
    """Deliver blocks (all missing, or ``indices``) of ``data``."""
    bs = acc.block_size
    todo = indices if indices is not None else [
        i for i in range(acc.n_blocks) if acc.missing[i // 8] >> (i % 8) & 1]
    for i in todo:
        meter.block(acc.transfer_id, i, data[i * bs:(i + 1) * bs], now)


def install(meter: Meter, pkg: bytes, orders: Orders, now: float, *,
            activation: str | int = "now", block_size: int = 1024) -> str:
    """Offer, send every block, verify (and activate per ``activation``); final state."""
    o = orders.order(pkg, now=now, activation=activation)
    acc = meter.offer(o, header(pkg), now, block_size=block_size)
    send_blocks(meter, acc, payload(pkg), now)
    return meter.verify(acc.component, now)


def random_image(size: int) -> bytes:
    return os.urandom(size)
