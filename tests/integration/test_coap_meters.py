"""Real meter processes over CoAP: push to three `amiup meter serve` processes, kill -9 one
mid-transfer (a power loss), restart it, push again: the transfer resumes from the blocks
it still misses, and every meter ends up running the bit-exact new image."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from amiup.meter import DirStorage, Meter, make_image, provision
from amiup.network import coap
from amiup.package import build_package
from amiup.trust import TrustAnchors, generate_key, save_private_key, save_public_key
from reqmark import req
from support_network import serve_meter, start_meter

pytestmark = pytest.mark.slow
CLI = [sys.executable, "-m", "amiup"]
BLOCK = 512


def _push(url: str, pkg: Path, key: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*CLI, "headend", "push", "--meter", url, "--package", str(pkg),
                             "--utility-key", str(key), "--block-size", str(BLOCK), "--json", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _received(url: str) -> int:
    st = asyncio.run(coap.read_status(url, full=False))
    comp = st.component("ami_app")
    return comp.received if comp else 0


@req("SM-2", "G-1", "SEC-2", "AMI-1")
def test_push_kill9_restart_and_resume_on_three_meter_processes(tmp_path: Path) -> None:
    vendor, utility = generate_key(), generate_key()
    key_file = tmp_path / "utility.key"
    save_private_key(utility, key_file)
    anchors = TrustAnchors.create(vendor=[vendor.public_key()], utility=[utility.public_key()])
    image = make_image("ami_app", "1.1.0", size=96 * 1024)
    pkg = tmp_path / "p.amiup"
    pkg.write_bytes(build_package(image, component="ami_app", version="1.1.0", security_seq=1,
                                  vendor="acme", model="AX-1", hw_revs=["A"], sign_keys=[vendor]))
    dirs, ports, procs = [], [], []
    try:
        for i in range(3):
            d = tmp_path / f"m{i}"
            provision(DirStorage(d), serial=f"s{i}", vendor="acme", model="AX-1", hw_rev="A",
                      anchors=anchors, image_size=4096, now=time.time())
            booted = Meter(DirStorage(d))  # before its process starts: never share a folder
            booted.boot(time.time())
            save_public_key(booted.public_key, tmp_path / f"meter{i}.pub")
            dirs.append(d)
            proc, port = start_meter(d)
            procs.append(proc)
            ports.append(port)
        urls = [f"coap://127.0.0.1:{p}" for p in ports]
        blocks = -(-len(image) // BLOCK)
        # meter 0 gets a slow push so that it can be killed mid-transfer
        pushes = [_push(urls[0], pkg, key_file, "--rate", "150")]
        pushes += [_push(u, pkg, key_file) for u in urls[1:]]
        for _ in range(300):
            if _received(urls[0]) >= blocks // 4:
                break
            time.sleep(0.05)
        os.kill(procs[0].pid, signal.SIGKILL)  # power loss in the middle of the transfer
        procs[0].wait(timeout=10)
        pushes[0].kill()
        pushes[0].wait(timeout=10)
        for p in pushes[1:]:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err.decode()
            assert json.loads(out)["outcome"] == "confirmed"
        procs[0] = serve_meter(dirs[0], ports[0])  # power back: boot runs recovery
        held = _received(urls[0])
        assert 0 < held < blocks
        again = _push(urls[0], pkg, key_file)
        out, err = again.communicate(timeout=120)
        assert again.returncode == 0, err.decode()
        result = json.loads(out)
        assert result["outcome"] == "confirmed" and result["running"] == "1.1.0"
        assert result["missing_at_start"] == blocks - held  # resumed, not restarted
        assert result["blocks_sent"] <= blocks - held + 16
        status = subprocess.run([*CLI, "headend", "status", "--meter", urls[0], "--meter-key",
                                 str(tmp_path / "meter0.pub"), "--json"],
                                capture_output=True, check=True, timeout=60)
        shown = json.loads(status.stdout)
        assert shown["components"]["ami_app"]["running"] == "1.1.0"
        assert shown["signed_report"] == "verified"
    finally:
        for p in procs:
            p.kill()
            p.wait(timeout=10)
    for d in dirs:  # every meter runs the bit-exact image
        meter = Meter(DirStorage(d))
        meter.boot(time.time())
        assert meter.slot_image("ami_app") == image
