"""Build the conformance report: each requirement's verdict from the tests that carry its ID.

Pure: catalog + vendor statements + recorded results + run facts in, a JSON-ready dict out
(the HTML is rendered from the same dict, so both files always agree).

Verdicts, per requirement:
* ``met``: at least one of its tests passed and none failed;
* ``failed``: at least one of its tests failed or errored;
* ``gap``: no test carries its ID, or none of them passed (skipped, deselected, not run).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from amiup.conformance.catalog import Catalog
from amiup.conformance.results import FAILING, PASSING, RunRecords, TestResult

SCHEMA = "amiup-conformance/1"
MET, FAILED, GAP = "met", "failed", "gap"


@dataclass(frozen=True, slots=True)
class RunInfo:
    """Facts about the run that a lab records beside the results."""

    generated: str  # ISO 8601 UTC
    duration_s: float
    command: tuple[str, ...]
    tests_path: str
    keyword: str | None
    pytest_exit: int | None
    amiup_version: str
    python: str
    platform: str
    extra: dict[str, Any] = field(default_factory=dict)


def _verdict(tests: list[TestResult]) -> tuple[str, str]:
    """A requirement's status and the sentence that explains it."""
    if not tests:
        return GAP, "no test carries this requirement ID"
    counts = Counter(t.outcome for t in tests)
    bad = sum(counts[o] for o in FAILING)
    if bad:
        return FAILED, f"{bad} of {len(tests)} test(s) failed"
    if counts[PASSING]:
        return MET, f"{counts[PASSING]} of {len(tests)} test(s) passed"
    detail = ", ".join(f"{n} {o}" for o, n in sorted(counts.items()))
    return GAP, f"no passing test ({detail})"


def build_report(
    catalog: Catalog,
    statements: dict[str, str],
    records: RunRecords,
    run: RunInfo,
) -> dict[str, Any]:
    """Map requirement -> tests -> evidence and summarise; the dict is the JSON report."""
    tests = records.all_tests()
    by_req: dict[str, list[TestResult]] = {rid: [] for rid in catalog.ids()}
    unknown: dict[str, list[str]] = {}
    for t in tests:
        for rid in t.reqs:
            if rid in by_req:
                by_req[rid].append(t)
            else:
                unknown.setdefault(rid, []).append(t.nodeid)

    requirements = []
    for r in catalog.requirements:
        status, reason = _verdict(by_req[r.id])
        requirements.append(
            {
                "id": r.id,
                "section": r.section,
                "text": r.text,
                "vendor_statement": statements.get(r.id, ""),
                "status": status,
                "reason": reason,
                "tests": [t.to_dict() for t in by_req[r.id]],
            }
        )

    status_counts = Counter(str(r["status"]) for r in requirements)
    outcome_counts = Counter(t.outcome for t in tests)
    unmarked = [t for t in tests if not t.reqs]
    complete = run.pytest_exit in (0, 1, 5) and not records.collect_errors
    met_all = status_counts[MET] == len(requirements)
    return {
        "schema": SCHEMA,
        "verdict": "conformant" if met_all and complete else "not conformant",
        "summary": {
            "requirements": len(requirements),
            MET: status_counts[MET],
            FAILED: status_counts[FAILED],
            GAP: status_counts[GAP],
            "tests": len(tests),
            "outcomes": dict(sorted(outcome_counts.items())),
            "unmarked_tests": len(unmarked),
            "run_complete": complete,
        },
        "run": {
            "generated": run.generated,
            "duration_s": round(run.duration_s, 3),
            "command": list(run.command),
            "tests_path": run.tests_path,
            "keyword": run.keyword,
            "pytest_exit": run.pytest_exit,
            "amiup_version": run.amiup_version,
            "python": run.python,
            "platform": run.platform,
            **run.extra,
        },
        "catalog": {"source": catalog.source, "sha256": catalog.sha256},
        "sections": [{"id": s.id, "title": s.title} for s in catalog.sections],
        "requirements": requirements,
        "findings": {
            "collection_errors": [
                {"nodeid": n, "text": text} for n, text in sorted(records.collect_errors.items())
            ],
            "unknown_ids": [{"id": k, "tests": v} for k, v in sorted(unknown.items())],
            "unmarked_tests": [
                {"nodeid": t.nodeid, "outcome": t.outcome, "failure": t.failure} for t in unmarked
            ],
        },
    }


def exit_code(report: dict[str, Any]) -> int:
    """0 when every requirement is met by a complete run, else 1 (documented CLI contract)."""
    return 0 if report["verdict"] == "conformant" else 1
