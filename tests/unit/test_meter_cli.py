"""`amiup meter` and `amiup fieldtool`: factory init, status, a local upgrade, bad credential."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from amiup.cli import fieldtool, meter
from amiup.errors import AmiupError
from amiup.meter import make_image
from amiup.package import build_package, write_atomic
from amiup.trust import save_private_key, save_public_key
from reqmark import req
from support_meter import HW_REV, MODEL, VENDOR, keys

runner = CliRunner()


def _setup(tmp_path: Path) -> Path:
    k = keys()
    save_public_key(k["vendor"].public_key(), tmp_path / "vendor.pub")
    save_public_key(k["utility"].public_key(), tmp_path / "utility.pub")
    save_private_key(k["utility"], tmp_path / "utility.key")
    save_private_key(k["utility2"], tmp_path / "rogue.key")
    d = tmp_path / "m1"
    res = runner.invoke(meter.app, [
        "init", "--data-dir", str(d), "--serial", "S-77", "--model", MODEL, "--hw-rev", HW_REV,
        "--vendor", VENDOR, "--vendor-key", str(tmp_path / "vendor.pub"),
        "--utility-key", str(tmp_path / "utility.pub"), "--component", "ami_app=1.4.0",
        "--image-size", "8192"])
    assert res.exit_code == 0, res.output
    return d


@req("SM-1", "MET-5")
def test_init_and_status(tmp_path: Path) -> None:
    d = _setup(tmp_path)
    assert (d / "meter.pub").exists()
    res = runner.invoke(meter.app, ["status", "--data-dir", str(d), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["meter_id"] == "S-77" and data["legal_version"] == "1.0"
    assert data["components"]["ami_app"]["running_version"] == "1.4.0"
    res = runner.invoke(meter.app, ["log", "--data-dir", str(d), "--verify"])
    assert res.exit_code == 0 and "event log ok" in res.output


@req("G-1", "SEC-8", "UMS-10")
def test_fieldtool_local_upgrade(tmp_path: Path) -> None:
    d = _setup(tmp_path)
    pkg = build_package(make_image("ami_app", "1.5.0", size=8192), component="ami_app",
                        version="1.5.0", security_seq=3, vendor=VENDOR, model=MODEL,
                        hw_revs=[HW_REV], sign_keys=[keys()["vendor"]])
    write_atomic(tmp_path / "p.amiup", pkg)
    res = runner.invoke(fieldtool.app, ["credential", "--utility-key", str(tmp_path / "utility.key"),
                                        "--tool-id", "van-3", "--meter", "S-77",
                                        "--out", str(tmp_path / "t.cred")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "t.cred").stat().st_mode & 0o077 == 0
    res = runner.invoke(fieldtool.app, ["upgrade", "--data-dir", str(d), "--package",
                                        str(tmp_path / "p.amiup"), "--credential",
                                        str(tmp_path / "t.cred")])
    assert res.exit_code == 0, res.output
    assert "committed; running 1.5.0" in res.output
    res = runner.invoke(meter.app, ["status", "--data-dir", str(d)])
    assert "local upgrade #1: ami_app 1.5.0 by van-3: committed" in res.output

    runner.invoke(fieldtool.app, ["credential", "--utility-key", str(tmp_path / "rogue.key"),
                                  "--tool-id", "x", "--meter", "*",
                                  "--out", str(tmp_path / "rogue.cred")])
    res = runner.invoke(fieldtool.app, ["upgrade", "--data-dir", str(d), "--package",
                                        str(tmp_path / "p.amiup"), "--credential",
                                        str(tmp_path / "rogue.cred")])
    assert isinstance(res.exception, AmiupError) and res.exception.code == "auth-failed"
