"""The UMS worker's HeadEnd interface over CoAP (`amiup headend run`): deliver and finish
jobs carrying UMS-signed orders, against a real `amiup meter serve` process."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from amiup.cli.headend import CoapHeadEnd
from amiup.meter import DirStorage, make_image, provision
from amiup.package import UpgradeOrder, build_package, decode_package, manifest_digest, sign_order
from amiup.trust import TrustAnchors, generate_key
from amiup.ums.scheduler import Job
from reqmark import req
from support_network import start_meter

pytestmark = pytest.mark.slow


@req("UMS-8", "SM-5", "G-1")
def test_deliver_on_command_then_finish_reads_the_new_version_back(tmp_path: Path) -> None:
    vendor, utility = generate_key(), generate_key()
    anchors = TrustAnchors.create(vendor=[vendor.public_key()], utility=[utility.public_key()])
    provision(DirStorage(tmp_path / "m"), serial="s-9", vendor="acme", model="AX-1", hw_rev="A",
              anchors=anchors, image_size=4096, now=time.time())
    proc, port = start_meter(tmp_path / "m")
    try:
        image = make_image("han_app", "2.0.0", size=20000)
        data = build_package(image, component="han_app", version="2.0.0", security_seq=2,
                             vendor="acme", model="AX-1", hw_revs=["A"], sign_keys=[vendor])
        digest = manifest_digest(decode_package(data).manifest_bytes)
        now = int(time.time())
        order = sign_order(UpgradeOrder(digest, ("s-9",), now - 60, now + 3600, 1,
                                        activation="on-command"), utility)
        he = CoapHeadEnd({"s-9": f"coap://127.0.0.1:{port}"}, {digest.hex(): data})

        def job(kind: str, attempt: int) -> Job:
            return Job(7, attempt, kind, "s-9", "han_app", 1, digest.hex(), "2.0.0",  # type: ignore[arg-type]
                       "on-command", now + 600, order if kind == "deliver" else None)

        he.submit([job("deliver", 1)], now)
        staged = he.poll(now)
        assert [(r.kind, r.state) for r in staged] == [
            ("progress", "transferring"), ("progress", "transferred"), ("progress", "verified"),
            ("released", None)]
        he.submit([job("finish", 2)], now)
        done = he.poll(now)
        assert [(r.kind, r.state, r.version) for r in done] == [
            ("progress", "activated", None), ("running", None, "2.0.0")]
        he.submit([job("deliver", 3)], now)  # a redelivery finds it running: never twice
        assert [(r.kind, r.version) for r in he.poll(now)] == [("running", "2.0.0")]
        he.submit([Job(8, 1, "deliver", "nobody", "han_app", 1, digest.hex(), "2.0.0",
                       "now", now + 600, order)], now)
        assert [(r.kind, r.code) for r in he.poll(now)] == [("failed", "unreachable")]
    finally:
        proc.kill()
        proc.wait(timeout=10)
