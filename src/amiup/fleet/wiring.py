"""Wire a UMS store, keys, a signed package, N simulated meters and a worker together.

Demos, integration tests and benches all need the same world: a vendor key trusted by the
catalog, a real signed package imported through the catalog, a utility key that signs the
orders, an inventory of meters spread over cells, the same meters simulated behind an
in-process head-end, and users to create and approve campaigns. :func:`build_world` makes it
in one call; everything it makes is real (keys, signatures, verification), only the meters'
radio and firmware are simulated.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amiup.fleet.sim import SimFleet, SimHeadEnd
from amiup.ums.auth import Principal
from amiup.ums.scheduler import OrderSigner
from amiup.ums.store import Store
from amiup.ums.worker import Worker


@dataclass(frozen=True, slots=True)
class Keys:
    """The vendor's signing key, the utility's order key, and the meters' trust anchors."""

    vendor: Any
    utility: Any
    anchors: Any

    @classmethod
    def generate(cls) -> Keys:
        from amiup.trust.anchors import TrustAnchors
        from amiup.trust.keys import generate_key

        vendor, utility = generate_key(), generate_key()
        anchors = TrustAnchors.create(vendor=[vendor.public_key()],
                                      utility=[utility.public_key()])
        return cls(vendor, utility, anchors)


def make_package(keys: Keys, *, component: str = "ami_app", version: str = "2.0.0",
                 vendor: str = "acme", model: str = "M1", hw_revs: tuple[str, ...] = ("A",),
                 metrology_ref: str | None = None, size: int = 256,
                 fault: str | None = None) -> bytes:
    """A real signed package (small image) for ``component``; ``fault`` makes the image
    fail on a reference meter ("self-test", "no-boot", "no-contact")."""
    from amiup.package.build import build_package

    legal = None
    if component == "metrology" or metrology_ref is not None:
        from amiup.package.manifest import LegalInfo

        legal = LegalInfo(metrology_ref or "PTB-22.10/01", version)
    image = (f"{component}:{version}:".encode() * (size // 8 + 1))[:size]
    if fault is not None:
        from amiup.meter import make_image

        image = make_image(component, version, size=size, fault=fault)  # type: ignore[arg-type]
    return build_package(image, component=component, version=version, security_seq=2,
                         vendor=vendor, model=model, hw_revs=list(hw_revs),
                         sign_keys=[keys.vendor], legal=legal, created=1_700_000_000)


def import_package(store: Store, keys: Keys, data: bytes, *, now: float,
                   vendor: str = "acme") -> int:
    """Trust the vendor key (once) and import ``data`` through the catalog; its id."""
    from sqlalchemy import select

    from amiup.trust.keys import key_id
    from amiup.ums import catalog
    from amiup.ums.models import VendorKey

    with store.session() as s:
        kid = key_id(keys.vendor.public_key())
        if s.scalar(select(VendorKey.id).where(VendorKey.key_id == kid)) is None:
            catalog.add_vendor_key(s, vendor=vendor, public_key=keys.vendor.public_key(),
                                   now=now, actor="setup")
    return catalog.import_package(store, data, now=now, actor="setup").id


def serials(n: int, prefix: str = "m") -> list[str]:
    """Stable meter serials ``m000001``..."""
    return [f"{prefix}{i:06d}" for i in range(1, n + 1)]


def seed_meters(store: Store, names: list[str], *, cells: int = 10, model: str = "M1",
                vendor: str = "acme", hw_rev: str = "A", region: str = "north",
                versions: dict[str, str] | None = None, now: float = 0.0) -> None:
    """Register meters in the inventory, spread round-robin over ``cells`` cells."""
    from amiup.ums import inventory

    versions = versions or {"ami_app": "1.0.0", "metrology": "1.0.0", "ami_comm": "1.0.0"}

    def rows() -> Iterator[dict[str, Any]]:
        for i, s in enumerate(names):
            yield {"serial": s, "model": model, "vendor": vendor, "hw_rev": hw_rev,
                   "region": region, "cell": f"cell{i % cells:03d}", "components": versions}

    with store.session() as s:
        inventory.bulk_register(s, rows(), now=now, actor="setup")


def make_user(store: Store, name: str, roles: list[str], *, now: float = 0.0) -> Principal:
    """A user with ``roles`` as the service layer sees it."""
    from amiup.ums import auth

    with store.session() as s:
        u = auth.create_user(s, username=name, password=None, roles=roles, now=now,
                             actor="setup")
        return Principal(u.id, u.username, frozenset(u.roles))


@dataclass(slots=True)
class World:
    """Everything a campaign run needs, built by :func:`build_world`."""

    store: Store
    keys: Keys
    sim: SimFleet
    headend: SimHeadEnd
    package_id: int
    meters: list[str]
    operator: Principal
    approver: Principal
    packages: dict[str, int] = field(default_factory=dict)

    def worker(self, worker_id: str = "w1", *, batch: int = 500, lease_s: float = 300.0,
               sign: bool = True) -> Worker:
        signer = OrderSigner(self.keys.utility) if sign else None
        return Worker(self.store, self.headend, worker_id=worker_id, signer=signer,
                      batch=batch, lease_s=lease_s)


def build_world(store: Store, n: int, *, cells: int = 10, component: str = "ami_app",
                version: str = "2.0.0", sim_path: Path | None = None,
                verify_orders: bool = True, now: float = 0.0, keys: Keys | None = None) -> World:
    """A store with users, a catalog package, ``n`` meters, and their simulated twins."""
    keys = keys or Keys.generate()
    pkg = import_package(store, keys, make_package(keys, component=component, version=version),
                         now=now)
    names = serials(n)
    base = {"ami_app": "1.0.0", "metrology": "1.0.0", "ami_comm": "1.0.0"}
    seed_meters(store, names, cells=cells, versions=base, now=now)
    sim = SimFleet(sim_path)
    if not sim.meters:
        sim.add(names, base)
    he = SimHeadEnd(sim, anchors=keys.anchors if verify_orders else None)
    op = make_user(store, "olga", ["operator"], now=now)
    ap = make_user(store, "arno", ["approver"], now=now)
    return World(store, keys, sim, he, pkg, names, op, ap, {component: pkg})
