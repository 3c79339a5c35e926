"""The CLI contract for keys and packages, run as a user runs it (a subprocess)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from reqmark import req
from support_package import firmware


def amiup(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "amiup", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=120)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("cli")
    for role in ("vendor", "meter"):
        r = amiup("keys", "generate", "--role", role, "--out", d)
        assert r.returncode == 0, r.stderr
    (d / "v1.bin").write_bytes(firmware("v1", 50_000))
    (d / "v2.bin").write_bytes(firmware("v1", 30_000) + firmware("v2", 20_000))
    return d


def build(work: Path, out: str, *extra: str | Path) -> subprocess.CompletedProcess[str]:
    return amiup("package", "build", "--image", work / "v2.bin", "--component", "ami_app",
                 "--version", "2.0.0", "--security-seq", "4", "--vendor", "acme", "--model",
                 "AX-1", "--hw-rev", "B", "--hw-rev", "C", "--sign-key", work / "vendor.key",
                 "--out", work / out, *extra)


def test_keys_generate_writes_0600_private_key_and_refuses_overwrite(work: Path) -> None:
    assert stat.S_IMODE(os.stat(work / "vendor.key").st_mode) == 0o600
    r = amiup("keys", "generate", "--role", "vendor", "--out", work)
    assert r.returncode == 2 and r.stderr.startswith("error: conflict:")
    r = amiup("keys", "generate", "--role", "wizard", "--out", work)
    assert r.returncode == 2 and "error: invalid-argument:" in r.stderr


@req("SEC-1", "SEC-2")
def test_build_inspect_verify_and_tampered_copy(work: Path) -> None:
    r = build(work, "p.amiup", "--requires", "metrology>=1.0.0")
    assert r.returncode == 0, r.stderr
    r = amiup("package", "inspect", work / "p.amiup", "--json")
    info = json.loads(r.stdout)
    assert info["manifest"]["version"] == "2.0.0" and info["manifest"]["hw_revs"] == ["B", "C"]
    assert info["manifest"]["requires"] == [["metrology", ">=", "1.0.0"]]
    r = amiup("package", "inspect", work / "p.amiup")
    assert r.returncode == 0 and "ami_app" in r.stdout and "unverified" in r.stdout
    r = amiup("package", "verify", work / "p.amiup", "--vendor-key", work / "vendor.pub")
    assert r.returncode == 0 and r.stdout.startswith("ok:"), r.stderr
    data = bytearray((work / "p.amiup").read_bytes())
    data[-100] ^= 0x40
    (work / "t.amiup").write_bytes(bytes(data))
    r = amiup("package", "verify", work / "t.amiup", "--vendor-key", work / "vendor.pub")
    assert r.returncode == 1
    assert r.stderr.strip().startswith("error: digest-mismatch:") and "\n" not in r.stderr.strip()
    r = amiup("package", "verify", work / "p.amiup", "--vendor-key", work / "meter.pub")
    assert r.returncode == 1 and r.stderr.startswith("error: unknown-key:")


@req("AMI-4", "SEC-7")
def test_delta_encrypted_build_and_verify(work: Path) -> None:
    r = build(work, "d.amiup", "--delta-from", work / "v1.bin", "--encrypt-for", work / "meter.pub")
    assert r.returncode == 0, r.stderr
    assert (work / "d.amiup").stat().st_size < (work / "v2.bin").stat().st_size / 2
    r = amiup("package", "verify", work / "d.amiup", "--vendor-key", work / "vendor.pub",
              "--old-image", work / "v1.bin", "--decrypt-key", work / "meter.key")
    assert r.returncode == 0 and "image digest checked" in r.stdout, r.stderr
    r = amiup("package", "verify", work / "d.amiup", "--vendor-key", work / "vendor.pub",
              "--old-image", work / "v2.bin", "--decrypt-key", work / "meter.key")
    assert r.returncode == 1 and r.stderr.startswith("error: delta-base-mismatch:")
    r = amiup("package", "verify", work / "d.amiup", "--vendor-key", work / "vendor.pub",
              "--old-image", work / "v1.bin", "--decrypt-key", work / "vendor.key")
    assert r.returncode == 1 and r.stderr.startswith("error: decrypt-failed:")


@req("MET-4")
def test_build_failure_leaves_no_file_and_no_traceback(work: Path) -> None:
    r = amiup("package", "build", "--image", work / "v2.bin", "--component", "metrology",
              "--version", "2.0.0", "--security-seq", "1", "--vendor", "acme", "--model", "AX-1",
              "--hw-rev", "B", "--sign-key", work / "vendor.key", "--out", work / "m.amiup")
    assert r.returncode == 1 and r.stderr.startswith("error: legal-fields-missing:")
    assert "Traceback" not in r.stderr and not (work / "m.amiup").exists()
    assert not [p for p in work.iterdir() if p.name.startswith(".m.amiup")]
    r = build(work, "x.amiup", "--image", work / "missing.bin")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    r = amiup("package", "verify", work / "nope.amiup", "--vendor-key", work / "vendor.pub")
    assert r.returncode == 2 and r.stderr.startswith("error: not-found:")
    r = amiup("package", "verify", work / "v1.bin", "--vendor-key", work / "vendor.pub")
    assert r.returncode == 1 and r.stderr.startswith("error: malformed-package:")
    r = amiup("package", "build")
    assert r.returncode == 2 and r.stderr.startswith("error: invalid-argument:")
