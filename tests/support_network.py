"""Shared fixtures for delivery tests: keys, real provisioned meters, a package and its order,
and a simulated network wired to the head-end with those meters behind it."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from amiup.headend.session import Delivery
from amiup.headend.simrun import RunConfig, SimDelivery, SimMeter
from amiup.meter import MemoryStorage, Meter, make_image, provision
from amiup.network import coap
from amiup.network.endpoint import MeterEndpoint
from amiup.network.events import EventLoop
from amiup.network.profiles import PROFILES
from amiup.network.sim import Impairments, SimNetwork
from amiup.package import UpgradeOrder, build_package, decode_package, sign_order
from amiup.trust import PrivateKey, TrustAnchors, generate_key

T0 = 1_800_000_000
VENDOR, MODEL, HW = "acme", "AX-1", "A"
COMPONENT = "ami_app"


@dataclass
class Kit:
    """Keys and anchors of one test world (made fresh per test; never written to disk)."""

    vendor: PrivateKey
    utility: PrivateKey
    anchors: TrustAnchors
    image_size: int


def make_kit(image_size: int = 16384) -> Kit:
    vendor, utility = generate_key(), generate_key()
    anchors = TrustAnchors.create(vendor=[vendor.public_key()], utility=[utility.public_key()])
    return Kit(vendor, utility, anchors, image_size)


def make_meters(kit: Kit, n: int, *, prefix: str = "m", groups: tuple[str, ...] = ("g1",),
                serials: tuple[str, ...] = ()) -> list[MeterEndpoint]:
    """``n`` factory-fresh meters (``ami_app`` 1.0.0), booted at T0; ``serials`` name the
    first ones (the rest are ``prefix`` + number)."""
    out = []
    for i in range(n):
        storage = MemoryStorage()
        serial = serials[i] if i < len(serials) else f"{prefix}{i:04d}"
        provision(storage, serial=serial, vendor=VENDOR, model=MODEL, hw_rev=HW,
                  anchors=kit.anchors, groups=groups, image_size=kit.image_size, now=T0)
        meter = Meter(storage)
        meter.boot(T0)
        out.append(MeterEndpoint(meter))
    return out


def new_image(kit: Kit, version: str = "1.1.0", component: str = COMPONENT,
              fault: str | None = None) -> bytes:
    return make_image(component, version, size=kit.image_size, fault=fault)  # type: ignore[arg-type]


def make_delivery(kit: Kit, targets: list[str], *, version: str = "1.1.0", delta: bool = False,
                  activation: str | int = "now", counter: int = 1, block_size: int = 256,
                  groups: tuple[str, ...] = (), head_activate: str | int | None = None,
                  image: bytes | None = None, component: str = COMPONENT,
                  fault: str | None = None) -> tuple[Delivery, bytes]:
    """A signed package for ``component`` and the utility's order naming ``targets``."""
    image = image if image is not None else new_image(kit, version, component, fault)
    old = make_image(component, "1.0.0", size=kit.image_size) if delta else None
    pkg = decode_package(build_package(
        image, component=component, version=version, security_seq=counter, vendor=VENDOR,
        model=MODEL, hw_revs=[HW], sign_keys=[kit.vendor], delta_from=old, created=T0))
    from amiup.package import manifest_digest

    order = UpgradeOrder(manifest_digest(pkg.manifest_bytes), tuple(targets), T0 - 60, T0 + 30 * 86400,
                         counter, groups=groups, activation=activation)
    d = Delivery(sign_order(order, kit.utility), pkg.signed_header, pkg.payload, component,
                 version, block_size, head_activate)  # type: ignore[arg-type]
    return d, image


def make_sim(endpoints: list[MeterEndpoint], delivery: Delivery, *, profile: str = "rf-mesh",
             imp: Impairments | None = None, cells: int = 1, config: RunConfig | None = None,
             seed: int = 1) -> tuple[EventLoop, SimNetwork, SimDelivery]:
    """Meters spread over ``cells`` cells at hop depths 1..max (round robin)."""
    loop = EventLoop(T0)
    prof = PROFILES[profile]
    net = SimNetwork(loop, prof, imp, seed=seed)
    placed = [SimMeter(ep, f"c{i % cells}", 1 + (i // cells) % prof.max_hops)
              for i, ep in enumerate(endpoints)]
    return loop, net, SimDelivery(loop, net, placed, delivery, config)


# -- real meter processes (CoAP)
CLI = [sys.executable, "-m", "amiup"]


def free_port() -> int:
    """A UDP port on loopback that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PortTaken(Exception):
    """The meter process exited at start: its port was taken meanwhile (a free_port race)."""


def serve_meter(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    """Start `amiup meter serve` on ``data_dir``; returns once it answers.

    Raises ``PortTaken`` at once if the process exits before answering (another process
    bound the port after ``free_port`` released it: parallel test workers do that).
    """
    log = data_dir.parent / f"{data_dir.name}-serve-{port}.log"
    with log.open("wb") as err:
        proc = subprocess.Popen([*CLI, "meter", "serve", "--data-dir", str(data_dir), "--port", str(port)],
                                stdout=subprocess.DEVNULL, stderr=err)
    url = f"coap://127.0.0.1:{port}"
    for _ in range(200):  # bounded wait until it answers (a loaded CI machine starts slowly)
        if proc.poll() is not None:
            raise PortTaken(f"meter on {url} exited {proc.returncode}: {log.read_text()[-400:]}")
        try:
            asyncio.run(coap.read_status(url, full=False, attempts=1, timeout=0.3))
            return proc
        except Exception:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"meter on {url} did not come up: {log.read_text()[-400:]}")


def start_meter(data_dir: Path, tries: int = 5) -> tuple[subprocess.Popen[bytes], int]:
    """``serve_meter`` on a fresh port, trying another if the port was taken meanwhile."""
    for _ in range(tries - 1):
        port = free_port()
        try:
            return serve_meter(data_dir, port), port
        except PortTaken:
            continue
    port = free_port()
    return serve_meter(data_dir, port), port
