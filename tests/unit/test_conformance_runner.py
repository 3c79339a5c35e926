"""End to end: `amiup conformance` on small synthetic suites (a real pytest child each time)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from amiup.cli.conformance import app
from amiup.conformance.catalog import load_catalog
from amiup.conformance.results import RunRecords
from amiup.conformance.runner import run_conformance
from amiup.errors import UsageError
from reqmark import req
from support_conformance import (
    CRASHING_SUITE,
    FAST_ENV,
    MIXED_SUITE,
    PASSING_SUITE,
    make_suite,
    run_amiup,
)


@pytest.fixture(scope="module")
def fast_env() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        for k, v in FAST_ENV.items():
            mp.setenv(k, v)
        yield


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory, fast_env: None) -> dict[str, Any]:
    """The mixed suite run once through the CLI; tests below read its outputs."""
    root = tmp_path_factory.mktemp("mixed")
    tests, catalog, statements = make_suite(root, MIXED_SUITE)
    out = root / "report"
    result = CliRunner().invoke(
        app,
        [
            "--tests",
            str(tests),
            "--catalog",
            str(catalog),
            "--statements",
            str(statements),
            "--out",
            str(out),
            "--quiet",
        ],
    )
    report = json.loads((out / "conformance.json").read_text(encoding="utf-8"))
    html = (out / "conformance.html").read_text(encoding="utf-8")
    return {"result": result, "report": report, "html": html, "out": out}


def _req(report: dict[str, Any], rid: str) -> dict[str, Any]:
    return next(q for q in report["requirements"] if q["id"] == rid)


def _test(q: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in q["tests"] if t["nodeid"].endswith(name))


@req("CONF-1")
def test_exit_code_1_and_summary_when_requirements_are_not_met(mixed: dict[str, Any]) -> None:
    assert mixed["result"].exit_code == 1, mixed["result"].output
    s = mixed["report"]["summary"]
    assert (s["requirements"], s["met"], s["failed"], s["gap"]) == (6, 2, 2, 2)
    assert s["outcomes"] == {"failed": 2, "passed": 7, "skipped": 1}
    assert s["unmarked_tests"] == 1 and s["run_complete"] is True
    assert mixed["report"]["verdict"] == "not conformant"
    assert "GAP    X-4: no test carries this requirement ID" in mixed["result"].output


@req("CONF-1")
def test_requirement_without_test_is_a_gap(mixed: dict[str, Any]) -> None:
    x4 = _req(mixed["report"], "X-4")
    assert (x4["status"], x4["tests"]) == ("gap", [])
    x3 = _req(mixed["report"], "X-3")
    assert x3["status"] == "gap"
    assert _test(x3, "test_only_skipped")["failure"] == "Skipped: hardware not present"
    assert 'id="X-4"' in mixed["html"]
    x4_html = mixed["html"].split('id="X-4"')[1].split("</section>")[0]
    assert "GAP: no automated test demonstrates this requirement." in x4_html


@req("CONF-1")
def test_failure_is_shown_with_its_text_and_evidence(mixed: dict[str, Any]) -> None:
    x2 = _req(mixed["report"], "X-2")
    assert x2["status"] == "failed"
    t = _test(x2, "test_bad_image_refused")
    assert t["outcome"] == "failed"
    assert "MAGIC-FAILURE-7" in t["failure"] and "assert (2 + 2) == 5" in t["failure"]
    assert t["stdout"] == "evidence printed before the failure\n"
    x5 = _req(mixed["report"], "X-5")
    assert x5["status"] == "failed" and x5["reason"] == "1 of 2 test(s) failed"
    assert "RuntimeError: mixed failure" in _test(x5, "test_mixed_fails")["failure"]
    assert "MAGIC-FAILURE-7" in mixed["html"]


@req("CONF-1")
def test_evidence_output_and_logs_are_captured(mixed: dict[str, Any]) -> None:
    x1 = _req(mixed["report"], "X-1")
    assert x1["status"] == "met"
    assert x1["vendor_statement"] == "The synthetic meter integrates energy in a loop of its own."
    t = _test(x1, "test_counts_energy")
    assert t["stdout"] == "figure: blocks_per_s=42.5 ratio_to_floor=1.08\n"
    assert "event: upgrade committed" in t["log"]
    assert t["duration_s"] > 0
    html = mixed["html"]
    assert "figure: blocks_per_s=42.5 ratio_to_floor=1.08" in html
    assert "The synthetic meter integrates energy in a loop of its own." in html
    assert "&lt;script&gt;alert(&#39;evidence&#39;)&lt;/script&gt;" in html
    y1 = _req(mixed["report"], "Y-1")
    assert [t["stdout"] for t in y1["tests"]] == ["case 1\n", "case 2\n"]
    assert y1["status"] == "met"


@req("CONF-1")
def test_unknown_ids_unmarked_tests_and_raw_output_reported(mixed: dict[str, Any]) -> None:
    findings = mixed["report"]["findings"]
    assert [u["id"] for u in findings["unknown_ids"]] == ["Z-9"]
    assert [t["nodeid"].split("::")[1] for t in findings["unmarked_tests"]] == ["test_unmarked_helper"]
    raw = (mixed["out"] / "pytest-output.txt").read_text(encoding="utf-8")
    assert "2 failed, 7 passed, 1 skipped" in raw


@req("CONF-1")
def test_all_requirements_met_exits_0_with_progress(tmp_path: Path, fast_env: None) -> None:
    tests, catalog, _ = make_suite(tmp_path, PASSING_SUITE)
    seen: list[tuple[int | None, int]] = []

    def progress(records: RunRecords) -> None:
        seen.append((records.total, records.done))

    outcome = run_conformance(
        tmp_path / "out",
        tests=tests,
        catalog=load_catalog(catalog),
        statements={},
        progress=progress,
    )
    assert outcome.report["verdict"] == "conformant"
    assert outcome.report["summary"]["met"] == 6
    assert seen[-1] == (2, 2)
    assert outcome.html_path.read_text(encoding="utf-8").count("badge met") >= 6


@req("CONF-1")
def test_crash_mid_run_still_writes_a_report_marked_incomplete(tmp_path: Path, fast_env: None) -> None:
    tests, catalog, _ = make_suite(tmp_path, CRASHING_SUITE)
    outcome = run_conformance(tmp_path / "out", tests=tests, catalog=load_catalog(catalog), statements={})
    r = outcome.report
    assert r["summary"]["run_complete"] is False and r["verdict"] == "not conformant"
    assert _req(r, "X-1")["status"] == "met"
    assert [t["outcome"] for t in _req(r, "X-3")["tests"]] == ["not-run"]
    assert _req(r, "X-2")["status"] == "gap"


@req("CONF-1")
def test_keyword_selection_and_xdist_workers(tmp_path: Path, fast_env: None) -> None:
    tests, catalog, _ = make_suite(tmp_path, MIXED_SUITE)
    outcome = run_conformance(
        tmp_path / "out",
        tests=tests,
        catalog=load_catalog(catalog),
        statements={},
        keyword="energy or parametrized",
        workers=2,
        pytest_args=("-p", "xdist.plugin"),
    )
    r = outcome.report
    assert r["run"]["keyword"] == "energy or parametrized"
    assert _req(r, "X-1")["status"] == "met" and _req(r, "Y-1")["status"] == "met"
    x2 = _req(r, "X-2")
    assert (x2["status"], x2["reason"]) == ("gap", "no passing test (1 deselected)")
    outcomes = r["summary"]["outcomes"]
    assert (outcomes["passed"], outcomes["deselected"]) == (3, 7)  # each result once
    assert "-n 2" in " ".join(r["run"]["command"])


@req("CONF-1")
def test_usage_error_exits_2_with_one_line(tmp_path: Path) -> None:
    # Through the real entry point: main() turns the error into one line and exit code 2.
    tests, _, _ = make_suite(tmp_path, PASSING_SUITE)
    proc = run_amiup(
        ["conformance", "--tests", str(tests), "--out", "out", "-q", "-k", "a and"], cwd=tmp_path
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: invalid-argument: ")
    assert "pytest refused the arguments: ERROR: Wrong expression" in proc.stderr
    assert proc.stderr.count("\n") == 1


@req("CONF-1")
@pytest.mark.parametrize(
    ("args", "why"),
    [
        (["--tests", "nowhere"], "test path not found"),
        (["--catalog", "missing.md"], "catalog not found"),
        (["--statements", "missing.toml"], "statements file not found"),
        (["--workers", "-1"], "--workers must be 0"),
    ],
)
def test_bad_arguments_are_usage_errors(tmp_path: Path, args: list[str], why: str) -> None:
    tests, _, _ = make_suite(tmp_path, PASSING_SUITE)
    result = CliRunner().invoke(app, ["--tests", str(tests), "--out", str(tmp_path / "o"), "-q", *args])
    assert isinstance(result.exception, UsageError), result.output
    assert result.exception.exit_code == 2
    assert why in result.exception.detail
