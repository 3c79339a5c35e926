"""Fixtures for the conformance runner's tests: a tiny synthetic suite, catalog and statements.

The runner's tests never run the real project suite (that would be slow and recursive);
they point it at a throwaway directory whose outcomes are known in advance.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CATALOG = """\
# Synthetic catalog

## X - Example section
- **X-1** The meter counts energy.
- **X-2** The meter refuses a bad image.
  A continuation line belongs to X-2.
- **X-3** Demonstrated only by a skipped test.
- **X-4** Demonstrated by no test at all.
- **X-5** One test passes and one fails.

## Y - Second section
- **Y-1** Shown by a parametrized test.
"""

STATEMENTS = """\
[statements]
"X-1" = "The synthetic meter integrates energy in a loop of its own."
"""

MIXED_SUITE = """\
import logging

import pytest


@pytest.mark.req("X-1")
def test_counts_energy():
    print("figure: blocks_per_s=42.5 ratio_to_floor=1.08")
    logging.getLogger("meter").warning("event: upgrade committed")


@pytest.mark.req("X-1")
def test_output_is_escaped():
    print("<script>alert('evidence')</script>")


@pytest.mark.req("X-2")
def test_bad_image_refused():
    print("evidence printed before the failure")
    assert 2 + 2 == 5, "MAGIC-FAILURE-7"


@pytest.mark.req("X-3")
@pytest.mark.skip(reason="hardware not present")
def test_only_skipped():
    pass


@pytest.mark.req("X-5")
def test_mixed_passes():
    pass


@pytest.mark.req("X-5")
def test_mixed_fails():
    raise RuntimeError("mixed failure")


@pytest.mark.req("Y-1")
@pytest.mark.parametrize("n", [1, 2])
def test_parametrized(n):
    print(f"case {n}")


@pytest.mark.req("Z-9")
def test_marks_unknown_id():
    pass


def test_unmarked_helper():
    pass
"""

PASSING_SUITE = """\
import pytest


@pytest.mark.req("X-1", "X-2", "X-3", "X-4", "X-5")
def test_all_x():
    print("all x shown")


@pytest.mark.req("Y-1")
def test_y():
    pass
"""

CRASHING_SUITE = """\
import os

import pytest


@pytest.mark.req("X-1")
def test_a_before_crash():
    pass


@pytest.mark.req("X-2")
def test_b_crashes_the_process():
    os._exit(3)


@pytest.mark.req("X-3")
def test_c_never_runs():
    pass
"""


def make_suite(root: Path, suite: str) -> tuple[Path, Path, Path]:
    """Write a synthetic suite, the catalog and statements under ``root``; return their paths."""
    tests = root / "suite"
    tests.mkdir(parents=True)
    (tests / "test_synthetic.py").write_text(suite, encoding="utf-8")
    catalog = root / "catalog.md"
    catalog.write_text(CATALOG, encoding="utf-8")
    statements = root / "statements.toml"
    statements.write_text(STATEMENTS, encoding="utf-8")
    return tests, catalog, statements


# Child pytest runs skip third-party plugin autoload (schemathesis, hypothesis...): it saves
# seconds per run and the synthetic suites need none of them.
FAST_ENV = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}


def run_amiup(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the real ``amiup`` entry point (main(), with its error printing and exit codes)."""
    code = "from amiup.cli.main import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        env={**os.environ, **FAST_ENV},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
