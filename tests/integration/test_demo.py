"""`amiup demo`: the main job end to end on the embedded defaults (what `make demo` runs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from amiup.fleet.demo import run_demo
from reqmark import req


@req("G-1", "G-4", "UMS-1", "UMS-8", "UMS-11")
def test_demo_campaign_confirms_every_meter_and_keeps_a_verified_audit(tmp_path: Path) -> None:
    seen: list[str] = []
    res = run_demo(tmp_path, meters=8, cells=2, loss=0.1, progress=lambda s, _i: seen.append(s))
    assert res.campaign_state == "completed"
    assert res.confirmed == 8 and res.states == {"confirmed": 8}
    assert res.running == {"2.0.0": 8}  # the inventory, from the meters' signed reports
    assert res.audit_ok and res.audit_rows > 8
    assert res.network_s > 0  # blocks really crossed the simulated network
    assert {"keys", "meters", "catalog", "inventory", "campaign", "progress"} <= set(seen)
    inv = json.loads(res.files["inventory"].read_text())
    assert len(inv) == 8 and all(r["serial"].startswith("AX") for r in inv)
    assert res.files["campaign"].read_text().count(",confirmed,") == 8
    assert (tmp_path / "keys" / "vendor.key").stat().st_mode & 0o077 == 0


def test_demo_command_runs_and_refuses_bad_options(tmp_path: Path) -> None:
    def amiup(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "amiup", "demo", *args], capture_output=True,
                              text=True, timeout=300)

    r = amiup("--meters", "6", "--cells", "2", "--out", str(tmp_path / "d"))
    assert r.returncode == 0, r.stderr
    assert "6 of 6" in r.stdout and "verified" in r.stdout and "rejected" in r.stdout
    r = amiup("--meters", "0")
    assert r.returncode == 2 and r.stderr.startswith("error: invalid-argument:")
    r = amiup("--out", str(tmp_path / "d"))
    assert r.returncode == 2 and r.stderr.startswith("error: conflict:")
