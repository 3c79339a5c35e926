"""Run the requirement test suite in a pytest subprocess and turn its records into the report.

The suite runs out of process (a crash or a stray ``sys.exit`` in a test cannot take the
runner down, and the runner never imports the code under test). The plugin in
``amiup.conformance.plugin`` writes JSON lines to a temporary directory; this module polls
them for progress, then builds and writes the report. pytest's own console output is kept
beside the report as ``pytest-output.txt``, the raw log of the run.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import amiup
from amiup.conformance.catalog import Catalog, load_catalog
from amiup.conformance.plugin import OPTION
from amiup.conformance.render import write_report
from amiup.conformance.report import RunInfo, build_report
from amiup.conformance.results import RecordTail, RunRecords
from amiup.conformance.statements import load_statements
from amiup.errors import error

PLUGIN = "amiup.conformance.plugin"
OUTPUT_NAME = "pytest-output.txt"
PYTEST_USAGE_ERROR = 4
POLL_S = 0.2
# Set by a surrounding pytest(-xdist) process; they would confuse the child run.
_ENV_DROP = (
    "PYTEST_CURRENT_TEST",
    "PYTEST_XDIST_WORKER",
    "PYTEST_XDIST_WORKER_COUNT",
    "PYTEST_XDIST_TESTRUNUID",
)

Progress = Callable[[RunRecords], None]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a conformance run produced: the report and where it was written."""

    report: dict[str, Any]
    json_path: Path
    html_path: Path
    output_path: Path


def _is_amiup_root(d: Path) -> bool:
    pyproject = d / "pyproject.toml"
    return (
        (d / "tests").is_dir()
        and pyproject.is_file()
        and ('name = "amiup"' in pyproject.read_text(encoding="utf-8", errors="replace"))
    )


def find_tests(start: Path | None = None) -> Path:
    """The amiup source tree's ``tests/``: above ``start`` (cwd), else beside the package."""
    here = (start or Path.cwd()).resolve()
    pkg_root = Path(amiup.__file__).resolve().parents[2]  # src/amiup/__init__.py -> repo
    for d in (here, *here.parents, pkg_root):
        if _is_amiup_root(d):
            return d / "tests"
    raise error("invalid-argument", "no amiup tests/ directory found here; pass --tests PATH")


def pytest_command(
    tests: Path, records_dir: Path, *, keyword: str | None, workers: int, extra: Sequence[str]
) -> list[str]:
    """The child pytest command line (also printed in the report)."""
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        str(tests),
        "-p",
        PLUGIN,
        f"{OPTION}={records_dir}",
        "-p",
        "no:cacheprovider",
        "-q",
    ]
    if workers > 0:
        cmd += ["-n", str(workers)]
    if keyword:
        cmd += ["-k", keyword]
    cmd += list(extra)
    return cmd


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _ENV_DROP}
    env.setdefault("PYTHONIOENCODING", "utf-8")
    return env


def _version() -> str:
    try:
        return metadata.version("amiup")
    except metadata.PackageNotFoundError:
        return "unknown"


def _pytest_complaint(path: Path) -> str:
    """pytest's own error lines from its output, on one line (for ``error: CODE: ...``)."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "see the pytest output"
    picked = [ln.strip() for ln in lines if ln.startswith(("ERROR", "error"))]
    picked = picked or [ln.strip() for ln in lines if ln.strip()][-3:]
    return " / ".join(picked)[:500]


def run_conformance(
    out_dir: Path,
    *,
    tests: Path | None = None,
    keyword: str | None = None,
    catalog: Catalog | None = None,
    statements: dict[str, str] | None = None,
    workers: int = 0,
    pytest_args: Sequence[str] = (),
    progress: Progress | None = None,
) -> Outcome:
    """Run the suite, write ``conformance.json`` and ``conformance.html`` into ``out_dir``."""
    tests_path = (tests or find_tests()).resolve()
    if not tests_path.exists():
        raise error("invalid-argument", f"test path not found: {tests_path}")
    if workers < 0:
        raise error("invalid-argument", "--workers must be 0 (no xdist) or more")
    cat = catalog or load_catalog()
    stmts = statements if statements is not None else load_statements()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as ex:
        raise error("io-error", f"cannot create {out_dir}: {ex.strerror}") from None
    output_path = out_dir / OUTPUT_NAME
    cwd = tests_path if tests_path.is_dir() else tests_path.parent
    if tests_path.name == "tests" and _is_amiup_root(tests_path.parent):
        cwd = tests_path.parent  # run where the project's pytest config lives

    started_wall = datetime.now(UTC)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="amiup-conformance-") as tmp:
        records_dir = Path(tmp)
        cmd = pytest_command(tests_path, records_dir, keyword=keyword, workers=workers, extra=pytest_args)
        tail = RecordTail(records_dir)
        with output_path.open("w", encoding="utf-8") as out:
            proc = subprocess.Popen(
                cmd,
                cwd=cwd,
                env=_child_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
            try:
                while proc.poll() is None:
                    time.sleep(POLL_S)
                    records = tail.poll()
                    if progress:
                        progress(records)
            except KeyboardInterrupt:
                proc.terminate()
                proc.wait()
                raise
        records = tail.poll()
        if progress:
            progress(records)
    rc = proc.returncode
    if rc == PYTEST_USAGE_ERROR:
        complaint = _pytest_complaint(output_path)
        raise error("invalid-argument", f"pytest refused the arguments: {complaint}")

    run = RunInfo(
        generated=started_wall.strftime("%Y-%m-%dT%H:%M:%SZ"),
        duration_s=time.monotonic() - started,
        command=tuple(_display(cmd, records_dir)),
        tests_path=str(tests_path),
        keyword=keyword,
        pytest_exit=rc,
        amiup_version=_version(),
        python=platform.python_version(),
        platform=platform.platform(terse=True),
    )
    report = build_report(cat, stmts, records, run)
    json_path, html_path = write_report(report, out_dir)
    return Outcome(report, json_path, html_path, output_path)


def _display(cmd: Sequence[str], records_dir: Path) -> list[str]:
    """The command as a lab would retype it (no interpreter path, no temp dir)."""
    shown = ["python", *cmd[1:]]
    return [a for a in shown if not a.startswith(OPTION)] if records_dir else shown
