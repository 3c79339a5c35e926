"""Campaigns on real reference meters (amiup.meter), driven in-process without a network.

The meters check the utility's signed orders and the vendor's package themselves, run the
trial of the new image, and commit or revert on their own; the UMS confirms only what the
meter's status report says is running.
"""

from __future__ import annotations

from sqlalchemy import select

from amiup.fleet.meters import MeterHeadEnd, real_meters
from amiup.fleet.wiring import World, import_package, make_package
from amiup.package.verify import decode_package
from amiup.trust.anchors import TrustAnchors
from amiup.ums.models import Assignment
from amiup.ums.scheduler import OrderSigner
from amiup.ums.store import Store
from amiup.ums.worker import Worker, run_until_done
from reqmark import req
from support_campaign import T0, campaign_state, launch, states, world
from support_ums import sqlite_store_fixture  # noqa: F401


def real_world(store: Store, n: int, *, fault: str | None = None) -> tuple[World, int,
                                                                         MeterHeadEnd]:
    w = world(store, n, cells=2)
    data = make_package(w.keys, version="2.1.0", fault=fault, size=2048)
    pkg = import_package(store, w.keys, data, now=T0)
    digest = decode_package(data)
    from amiup.package.manifest import manifest_digest

    anchors = TrustAnchors.create(vendor=[w.keys.vendor.public_key()],
                                  utility=[w.keys.utility.public_key()])
    meters = real_meters(w.meters, anchors, now=T0)
    he = MeterHeadEnd(meters, {manifest_digest(digest.manifest_bytes).hex(): data},
                      block_size=256)
    return w, pkg, he


def worker(w: World, he: MeterHeadEnd) -> Worker:
    return Worker(w.store, he, worker_id="real", signer=OrderSigner(w.keys.utility))


@req("UMS-8", "SEC-3", "SM-1")
def test_real_meters_confirmed_after_reading_the_new_version_back(sqlite_store: Store) -> None:
    w, pkg, he = real_world(sqlite_store, 6)
    cid = launch(w, package_id=pkg, waves={"pilot": 2})
    run_until_done(worker(w, he), [cid], now=T0)
    assert states(sqlite_store, cid) == {"confirmed": 6}
    for m in he.meters.values():
        cs = m.status(b"n" * 16, T0 + 100).components["ami_app"]
        assert (cs.running_version, cs.state) == ("2.1.0", "committed")


@req("UMS-8", "UMS-7", "SM-6")
def test_an_image_that_fails_its_self_test_reverts_and_halts_the_rollout(
    sqlite_store: Store,
) -> None:
    w, pkg, he = real_world(sqlite_store, 6, fault="self-test")
    cid = launch(w, package_id=pkg, waves={"pilot": 2}, failure_threshold=0.2)
    run_until_done(worker(w, he), [cid], now=T0)
    assert campaign_state(sqlite_store, cid) == "halted"
    assert states(sqlite_store, cid) == {"failed": 2, "pending": 4}
    with sqlite_store.session() as s:
        codes = set(s.execute(select(Assignment.error_code)
                              .where(Assignment.state == "failed")).scalars())
    assert codes == {"self-test-failed"}
    running = {m.status(b"n" * 16, T0 + 100).components["ami_app"].running_version
               for m in he.meters.values()}
    assert running == {"1.0.0"}  # the pilot meters went back by themselves


@req("SEC-3")
def test_a_meter_refuses_a_delivery_whose_order_was_not_signed_by_the_utility(
    sqlite_store: Store,
) -> None:
    from amiup.trust.keys import generate_key

    w, pkg, he = real_world(sqlite_store, 2)
    cid = launch(w, package_id=pkg, failure_threshold=1.0, success_gate=0.0)
    rogue = Worker(w.store, he, worker_id="rogue", signer=OrderSigner(generate_key()))
    run_until_done(rogue, [cid], now=T0)
    with sqlite_store.session() as s:
        codes = set(s.execute(select(Assignment.error_code)).scalars())
    assert codes == {"unknown-key"} and states(sqlite_store, cid) == {"failed": 2}


@req("UMS-8", "AMI-1")
def test_ami_comm_is_confirmed_only_after_the_meter_commits_its_trial(
    sqlite_store: Store,
) -> None:
    from amiup.package.manifest import manifest_digest

    w = world(sqlite_store, 3, cells=1)
    data = make_package(w.keys, component="ami_comm", version="3.0.0", size=1024)
    pkg = import_package(sqlite_store, w.keys, data, now=T0)
    anchors = TrustAnchors.create(vendor=[w.keys.vendor.public_key()],
                                  utility=[w.keys.utility.public_key()])
    he = MeterHeadEnd(real_meters(w.meters, anchors, now=T0),
                      {manifest_digest(decode_package(data).manifest_bytes).hex(): data})
    cid = launch(w, package_id=pkg)
    run_until_done(worker(w, he), [cid], now=T0)
    assert states(sqlite_store, cid) == {"confirmed": 3}
    for m in he.meters.values():
        cs = m.status(b"n" * 16, T0 + 100).components["ami_comm"]
        assert (cs.running_version, cs.state) == ("3.0.0", "committed")


@req("UMS-8", "SEC-3", "UMS-6")
def test_campaign_over_the_simulated_network_with_loss(sqlite_store: Store) -> None:
    from amiup.fleet.network import NetworkHeadEnd
    from amiup.package.manifest import manifest_digest

    w = world(sqlite_store, 4, cells=2)
    data = make_package(w.keys, version="2.2.0", size=4096)
    pkg = import_package(sqlite_store, w.keys, data, now=T0)
    anchors = TrustAnchors.create(vendor=[w.keys.vendor.public_key()],
                                  utility=[w.keys.utility.public_key()])
    meters = real_meters(w.meters, anchors, now=T0)
    he = NetworkHeadEnd(meters, {manifest_digest(decode_package(data).manifest_bytes).hex():
                                 data}, loss=0.1)
    cid = launch(w, package_id=pkg, retry={"max_attempts": 5, "backoff_s": 60, "jitter": 0})
    run_until_done(worker(w, he), [cid], now=T0, dt=60)
    assert states(sqlite_store, cid) == {"confirmed": 4}
    assert len(he.clock) == 4 and all(t > T0 for t in he.clock.values())  # airtime was spent
    for m in meters.values():
        cs = m.status(b"n" * 16, max(he.clock.values()) + 1).components["ami_app"]
        assert (cs.running_version, cs.state) == ("2.2.0", "committed")
