"""`amiup sim`: the JSON summary and the human one."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from amiup.cli.sim import sim
from reqmark import req

CLI = [sys.executable, "-m", "amiup"]
APP = typer.Typer()
APP.command()(sim)


@req("AMI-4")
def test_sim_json_has_the_documented_fields() -> None:
    out = CliRunner().invoke(APP, ["--meters", "2000", "--strategy", "multicast", "--delta",
                                   "--loss", "0.05", "--profile", "plc", "--json"])
    assert out.exit_code == 0, out.output
    d = json.loads(out.stdout)
    for key in ("meters", "confirmed", "failed_by_code", "cells", "payload_bytes", "airtime_bytes",
                "floor_s", "t50_s", "t95_s", "t99_s", "t100_s", "wall_s"):
        assert key in d
    assert d["meters"] == d["confirmed"] == 2000
    assert d["cells"] == 7 and d["loss"] == 0.05 and d["delta"] is True
    assert d["t100_s"] >= d["floor_s"] > 0


def test_sim_summary_prints_floor_and_ratio_and_refuses_bad_options() -> None:
    out = CliRunner().invoke(APP, ["--meters", "500", "--strategy", "unicast"])
    assert out.exit_code == 0, out.output
    assert "floor" in out.stdout and "t100 / floor" in out.stdout
    bad = subprocess.run([*CLI, "sim", "--strategy", "broadcast"], capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("error: invalid-argument")
    assert "--strategy" in bad.stderr


@req("AMI-4")
def test_detailed_run_with_real_agents_matches_the_model() -> None:
    args = ["--meters", "40", "--profile", "plc", "--strategy", "multicast", "--image-kib", "16",
            "--json"]
    model = json.loads(CliRunner().invoke(APP, args).stdout)
    out = CliRunner().invoke(APP, [*args, "--detailed"])
    assert out.exit_code == 0, out.output
    real = json.loads(out.stdout)
    assert real["confirmed"] == model["confirmed"] == 40
    assert real["airtime_bytes"] == pytest.approx(model["airtime_bytes"], rel=0.2)
