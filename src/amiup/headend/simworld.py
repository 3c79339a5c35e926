"""A small fleet of real meter agents on the simulated network: `amiup sim --detailed`.

Builds keys in memory, provisions ``n`` meters (memory storage), signs one package (full or
delta) and a group order, places the meters in cells at hop depths drawn from the profile,
runs ``SimDelivery`` and summarizes it like the aggregated model (``FleetResult``), so the
two can be compared on the same command line.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from amiup.errors import error
from amiup.headend.fleetmodel import FleetConfig, FleetResult, floor_seconds
from amiup.headend.multicast import MulticastConfig
from amiup.headend.session import Delivery
from amiup.headend.simrun import RunConfig, SimDelivery, SimMeter
from amiup.meter import MemoryStorage, Meter, make_image, provision
from amiup.network.endpoint import MeterEndpoint
from amiup.network.events import EventLoop
from amiup.network.sim import Impairments, SimNetwork
from amiup.package import UpgradeOrder, build_package, decode_package, manifest_digest, sign_order
from amiup.trust import TrustAnchors, generate_key

T0 = 1_800_000_000
MAX_DETAILED = 2000
COMPONENT = "ami_comm"


def run_detailed(cfg: FleetConfig) -> FleetResult:
    """Deliver to ``cfg.meters`` real meter agents over the per-frame simulator."""
    if cfg.meters > MAX_DETAILED:
        raise error("invalid-argument", f"--detailed runs real agents: at most {MAX_DETAILED} meters")
    if cfg.delta is False and cfg.image_size > 4 * 1024 * 1024:
        raise error("invalid-argument", "--detailed: image at most 4 MiB")
    if cfg.offline or cfg.lost:
        raise error("invalid-argument", "--offline/--lost are for the aggregated model")
    started = time.perf_counter()
    prof = cfg.profile
    vendor, utility = generate_key(), generate_key()
    anchors = TrustAnchors.create(vendor=[vendor.public_key()], utility=[utility.public_key()])
    old = make_image(COMPONENT, "1.0.0", size=cfg.image_size)
    new = make_image(COMPONENT, "1.1.0", size=cfg.image_size)
    pkg = decode_package(build_package(
        new, component=COMPONENT, version="1.1.0", security_seq=1, vendor="acme", model="AX-1",
        hw_revs=["A"], sign_keys=[vendor], delta_from=old if cfg.delta else None, created=T0))
    order = UpgradeOrder(manifest_digest(pkg.manifest_bytes), (), T0 - 60, T0 + 60 * 86400, 1,
                         groups=("fleet",), activation="now")
    delivery = Delivery(sign_order(order, utility), pkg.signed_header, pkg.payload, COMPONENT,
                        "1.1.0", prof.block_size)
    rng = np.random.default_rng(cfg.seed)
    w = np.asarray(prof.hop_weights) / sum(prof.hop_weights)
    hops = rng.choice(np.arange(1, len(w) + 1), size=cfg.meters, p=w)
    placed = []
    for i in range(cfg.meters):
        storage = MemoryStorage()
        provision(storage, serial=f"m{i:05d}", vendor="acme", model="AX-1", hw_rev="A",
                  anchors=anchors, groups=("fleet",), images={COMPONENT: old}, now=T0)
        meter = Meter(storage)
        meter.boot(T0)
        placed.append(SimMeter(MeterEndpoint(meter), f"c{i // prof.meters_per_cell}", int(hops[i])))
    loop = EventLoop(T0)
    net = SimNetwork(loop, prof, Impairments(loss=cfg.block_loss), seed=cfg.seed)
    run_cfg = RunConfig(strategy=cfg.effective_strategy, share=cfg.upgrade_share,
                        multicast=MulticastConfig(expected_loss=cfg.block_loss),
                        concurrency=16, gather=cfg.gather, tree_seed=cfg.seed)
    sim = SimDelivery(loop, net, placed, delivery, run_cfg)
    sim.start()
    sim.run(T0 + 30 * 86400, max_steps=50_000_000)
    ids = [m.endpoint.meter_id for m in placed]
    confirm = np.array([(sim.outcomes[mid].confirmed_at or np.inf) - T0 for mid in ids])
    failed: dict[str, int] = {}
    for mid in ids:
        o = sim.outcomes[mid]
        if o.confirmed_at is None:
            failed[o.code or "timeout"] = failed.get(o.code or "timeout", 0) + 1
    cells = np.arange(cfg.meters) // prof.meters_per_cell
    air = np.array([net.cells[f"c{c}"].airtime_bytes for c in range(int(cells[-1]) + 1)])
    # report the payload actually sent (a real delta's size, not the 10% assumption)
    sent = dataclasses.replace(cfg, delta_ratio=len(delivery.payload) / cfg.image_size)
    floor = floor_seconds(sent, cells, hops.astype(np.int8))
    return FleetResult(sent, confirm, air, floor, time.perf_counter() - started, failed)
