"""The main job end to end on the embedded defaults: what `amiup demo` runs.

A vendor signs a package; the UMS (SQLite) imports it through the catalog, learns its meters
from their signed status reports, plans a campaign with a pilot and waves per cell, has it
approved by a second person and started; a worker drives the in-process head-end, which
carries every block over the simulated RF mesh (with loss) to real reference meters that check
the utility's order and the vendor's signature, stage, activate, run the trial and commit;
the UMS confirms each meter only after reading the new version back. Time is virtual (the
network's clock), so the run takes seconds; every key, signature and check is real.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amiup.fleet.meters import real_meters
from amiup.fleet.network import NetworkHeadEnd
from amiup.fleet.wiring import make_user
from amiup.meter import make_image
from amiup.package import build_package, decode_package, manifest_digest
from amiup.trust import (
    TrustAnchors,
    generate_key,
    public_bytes,
    save_private_key,
    save_public_key,
)
from amiup.ums import audit, campaigns, catalog, inventory
from amiup.ums.export import render
from amiup.ums.scheduler import OrderSigner
from amiup.ums.store import open_store
from amiup.ums.worker import Worker

T0 = 1_800_000_000.0  # virtual start: 2027-01-15 08:00 UTC
MODEL, VENDOR, HW = "AX-1", "acme", "A"


@dataclass
class DemoResult:
    """What the run did, for the summary and for tests."""

    meters: int
    confirmed: int
    states: dict[str, int]
    failure_reasons: dict[str, int]
    campaign_state: str
    virtual_s: float
    network_s: float
    audit_rows: int
    audit_ok: bool
    running: dict[str, int] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)


Progress = Callable[[str, dict[str, Any]], None]


def run_demo(work: Path, *, meters: int = 20, cells: int = 4, loss: float = 0.05,
             image_kib: int = 32, progress: Progress | None = None) -> DemoResult:
    """Run the whole job in ``work`` (keys, the SQLite store, exports)."""
    say: Progress = progress or (lambda _step, _info: None)
    work.mkdir(parents=True, exist_ok=True)
    now = T0

    # 1. keys: the manufacturer signs images, the utility's UMS signs orders
    keydir = work / "keys"
    keydir.mkdir(exist_ok=True)
    vendor, utility = generate_key(), generate_key()
    for name, k in (("vendor", vendor), ("utility", utility)):
        save_private_key(k, keydir / f"{name}.key")
        save_public_key(k.public_key(), keydir / f"{name}.pub")
    anchors = TrustAnchors.create(vendor=[vendor.public_key()], utility=[utility.public_key()])
    say("keys", {"dir": keydir})

    # 2. the fleet: real reference meters provisioned at the factory with these anchors
    serials = [f"AX{i:05d}" for i in range(1, meters + 1)]
    fleet = real_meters(serials, anchors, vendor=VENDOR, model=MODEL, hw_rev=HW, now=now)
    say("meters", {"count": meters})

    # 3. the vendor builds and signs ami_app 2.0.0
    image = make_image("ami_app", "2.0.0", size=image_kib * 1024)
    data = build_package(image, component="ami_app", version="2.0.0", security_seq=2,
                         vendor=VENDOR, model=MODEL, hw_revs=[HW], sign_keys=[vendor],
                         notes="demo release", created=int(now))
    (work / "ami_app-2.0.0.amiup").write_bytes(data)

    store = open_store(data_dir=work / "ums")
    try:
        # 4. UMS: users with separate duties, the vendor key, the package through the catalog
        operator = make_user(store, "olga", ["operator"], now=now)
        approver = make_user(store, "arno", ["approver"], now=now)
        with store.session() as s:
            catalog.add_vendor_key(s, vendor=VENDOR, public_key=vendor.public_key(), now=now,
                                   actor="admin")
        pkg = catalog.import_package(store, data, now=now, actor="admin")
        say("catalog", {"package": pkg.id, "digest": pkg.digest})

        # 5. inventory from the meters' own signed status reports (nonce-checked)
        with store.session() as s:
            for i, serial in enumerate(serials):
                m = fleet[serial]
                row = inventory.upsert_meter(s, serial=serial, model=MODEL, vendor=VENDOR,
                                             hw_rev=HW, region="north", cell=f"cell{i % cells}",
                                             public_key_der=public_bytes(m.public_key),
                                             now=now, actor="admin")
                nonce = inventory.issue_nonce(s, row)
                inventory.ingest_report(s, m.status(nonce, now).to_bytes(), now=now,
                                        actor="headend")
        say("inventory", {"meters": meters, "cells": cells})

        # 6. campaign: filter target, pilot then waves per cell, approved by someone else
        spec = campaigns.CampaignSpec(
            name="ami_app 2.0.0", package_id=pkg.id,
            target={"kind": "filter", "filter": f"model={MODEL} and ami_app.version<2.0.0"},
            waves={"pilot": max(1, meters // 10), "steps": ["50%"]},
            success_gate=0.9, failure_threshold=0.2,
            retry={"max_attempts": 5, "backoff_s": 120, "jitter": 0})
        with store.session() as s:
            cid = campaigns.create_campaign(s, actor=operator, now=now, spec=spec).id
        with store.session() as s:
            campaigns.approve(s, actor=approver, campaign_id=cid, now=now)
            campaigns.start(s, actor=operator, campaign_id=cid, now=now)
        say("campaign", {"id": cid})

        # 7. the worker drives the in-process head-end over the simulated RF mesh
        digest = manifest_digest(decode_package(data).manifest_bytes).hex()
        headend = NetworkHeadEnd(fleet, {digest: data}, profile="rf-mesh",
                                 cells={s: f"cell{i % cells}" for i, s in enumerate(serials)},
                                 loss=loss, block_size=512)
        worker = Worker(store, headend, worker_id="demo", signer=OrderSigner(utility))
        worker.recover(now)
        prog: dict[str, Any] = {}
        for _ in range(20_000):
            worker.step(now)
            with store.session() as s:
                prog = campaigns.progress(s, campaign_id=cid)
            say("progress", prog)
            if prog["state"] != "running":
                break
            now += 30.0

        # 8. read every meter back into the inventory and check the audit chain
        with store.session() as s:
            for serial in serials:
                row = inventory.get_meter(s, serial)
                nonce = inventory.issue_nonce(s, row)
                t = max(now, headend.clock.get(serial, now))
                inventory.ingest_report(s, fleet[serial].status(nonce, t).to_bytes(), now=now,
                                        actor="headend")
            running: dict[str, int] = {}
            for r in inventory.query(s, filter_expr=f"model={MODEL}", limit=meters)[1]:
                v = r["components"].get("ami_app", {}).get("running", "?")
                running[v] = running.get(v, 0) + 1
            check = audit.verify(s)
        files = _exports(store, cid, work)
        return DemoResult(
            meters=meters, confirmed=prog["states"].get("confirmed", 0), states={
                k: v for k, v in prog["states"].items() if v}, failure_reasons=prog[
                "failure_reasons"], campaign_state=prog["state"], virtual_s=now - T0,
            network_s=max(headend.clock.values(), default=T0) - T0, audit_rows=check.rows, audit_ok=check.ok,
            running=running, files=files)
    finally:
        store.dispose()


def _exports(store: Any, cid: int, work: Path) -> dict[str, Path]:
    """Campaign report (CSV), inventory (JSON) and audit trail (CSV) next to the store."""
    out = {}
    for kind, fmt, name in (("campaign", "csv", "campaign.csv"),
                            ("inventory", "json", "inventory.json"), ("audit", "csv", "audit.csv")):
        with store.session() as s:
            text = "".join(render(s, kind, fmt, campaign_id=cid if kind == "campaign" else None))
        (work / name).write_text(text)
        out[kind] = work / name
    return out
