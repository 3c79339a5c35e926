"""The distributed deployment end to end, as separate processes on loopback.

`amiup ums serve` (REST + head-end API, SQLite), `amiup ums worker` (ticks waves and gates),
`amiup headend run` (pulls work over HTTP, delivers over CoAP) and `amiup meter serve` (a real
meter); users, vendor key, package, meter and campaign set up through the CLI and the REST API
exactly as an operator would. The meter is confirmed only after its new version is read back.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from amiup.meter import make_image
from amiup.trust import generate_key, save_private_key, save_public_key
from reqmark import req
from support_network import start_meter

pytestmark = pytest.mark.slow
CLI = [sys.executable, "-m", "amiup"]


def run(*args: str | Path, env: dict[str, str] | None = None) -> str:
    r = subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=120,
                       env=env)
    assert r.returncode == 0, f"{args}: {r.stderr}"
    return r.stdout


def token_of(text: str) -> str:
    m = re.search(r"amiup_[A-Za-z0-9_-]+", text)
    assert m, text
    return m.group(0)


def tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@req("UMS-8", "UMS-5", "G-1", "SEC-3", "SEC-4")
def test_ums_server_worker_headend_and_meter_processes(tmp_path: Path) -> None:
    keys, data, pkgs = tmp_path / "keys", tmp_path / "ums", tmp_path / "pkgs"
    for d in (keys, pkgs):
        d.mkdir()
    vendor, utility = generate_key(), generate_key()
    for name, k in (("vendor", vendor), ("utility", utility)):
        save_private_key(k, keys / f"{name}.key")
        save_public_key(k.public_key(), keys / f"{name}.pub")
    (tmp_path / "new.img").write_bytes(make_image("ami_app", "2.0.0", size=8192))
    run("package", "build", "--image", tmp_path / "new.img", "--component", "ami_app",
        "--version", "2.0.0", "--security-seq", "2", "--vendor", "acme", "--model", "AX-1",
        "--hw-rev", "A", "--sign-key", keys / "vendor.key", "--out", pkgs / "ami_app.amiup")

    admin = token_of(run("ums", "init", "--data-dir", data))
    tokens = {}
    for user, role in (("olga", "operator"), ("arno", "approver"), ("ulla", "uploader"),
                       ("he1", "operator")):
        run("ums", "user", "add", user, "--role", role, "--data-dir", data)
        tokens[user] = token_of(run("ums", "user", "token", user, "--data-dir", data))
    run("ums", "vendor-key", "add", "--vendor", "acme", "--key", keys / "vendor.pub",
        "--data-dir", data)
    run("ums", "package", "import", pkgs / "ami_app.amiup", "--data-dir", data)

    run("meter", "init", "--data-dir", tmp_path / "m1", "--serial", "S1", "--model", "AX-1",
        "--hw-rev", "A", "--vendor-key", keys / "vendor.pub", "--utility-key", keys / "utility.pub",
        "--component", "ami_app=1.0.0")
    http_port = tcp_port()
    env = {**os.environ, "AMIUP_UMS_ORDER_KEY": str(keys / "utility.key")}
    meter_proc, coap_port = start_meter(tmp_path / "m1")
    procs = [meter_proc]
    try:
        procs.append(subprocess.Popen([*CLI, "ums", "serve", "--data-dir", str(data), "--port",
                                       str(http_port)], env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
        base = f"http://127.0.0.1:{http_port}"
        api = httpx.Client(base_url=base, timeout=10)
        for _ in range(100):  # bounded wait for the server
            try:
                if api.get("/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)

        def call(method: str, path: str, who: str, **kw: object) -> dict:  # type: ignore[type-arg]
            tok = admin if who == "admin" else tokens[who]
            r = api.request(method, path, headers={"Authorization": f"Bearer {tok}"}, **kw)  # type: ignore[arg-type]
            assert r.status_code < 300, (path, r.status_code, r.text)
            return r.json()  # type: ignore[no-any-return]

        call("PUT", "/meters/S1", "olga", json={"model": "AX-1", "vendor": "acme", "hw_rev": "A",
                                                "components": {"ami_app": "1.0.0"}})
        pkg_id = call("GET", "/packages", "olga")["items"][0]["id"]
        # separation of duties: the uploader may not create, the creator may not approve
        r = api.post("/campaigns", headers={"Authorization": f"Bearer {tokens['ulla']}"},
                     json={"name": "c", "package_id": pkg_id, "target": {"kind": "fleet"}})
        assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json"
        cid = call("POST", "/campaigns", "olga", json={
            "name": "ami_app 2.0.0", "package_id": pkg_id, "target": {"kind": "fleet"}})["id"]
        r = api.post(f"/campaigns/{cid}/approve",
                     headers={"Authorization": f"Bearer {tokens['olga']}"})
        assert r.status_code == 403
        call("POST", f"/campaigns/{cid}/approve", "arno")
        call("POST", f"/campaigns/{cid}/start", "olga")

        procs.append(subprocess.Popen([*CLI, "ums", "worker", "--data-dir", str(data), "--headend",
                                       "none", "--idle", "0.2"], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        procs.append(subprocess.Popen([*CLI, "headend", "run", "--ums", base, "--packages",
                                       str(pkgs), "--meter", f"S1=coap://127.0.0.1:{coap_port}",
                                       "--token", tokens["he1"]], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
        progress: dict = {}  # type: ignore[type-arg]
        for _ in range(240):  # bounded: 60 s
            progress = call("GET", f"/campaigns/{cid}/progress", "olga")
            if progress["state"] == "completed":
                break
            time.sleep(0.25)
        assert progress["state"] == "completed", progress
        assert progress["states"]["confirmed"] == 1
        meter = call("GET", "/meters/S1", "olga")
        assert meter["components"]["ami_app"]["running"] == "2.0.0"
        status = run("headend", "status", "--meter", f"coap://127.0.0.1:{coap_port}", "--json")
        assert '"2.0.0"' in status
        assert "ok" in run("ums", "audit", "verify", "--data-dir", data).lower()
    finally:
        for p in procs:
            p.kill()
            p.wait(timeout=10)
