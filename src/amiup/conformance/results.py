"""Read the plugin's JSON lines back into per-test results (while pytest runs, or after).

The records come from several files (controller and xdist workers) and may repeat the
selection (every worker collects every test); this module folds them into one view and
never trusts a half-written last line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PASSING = "passed"
FAILING = frozenset({"failed", "error"})


@dataclass(frozen=True, slots=True)
class TestResult:
    """One test's folded outcome and the evidence it printed."""

    nodeid: str
    reqs: tuple[str, ...]
    outcome: str  # passed failed error skipped xfailed xpassed deselected not-run
    duration_s: float = 0.0
    stdout: str = ""
    stderr: str = ""
    log: str = ""
    failure: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "nodeid": self.nodeid,
            "reqs": list(self.reqs),
            "outcome": self.outcome,
            "duration_s": self.duration_s,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "log": self.log,
            "failure": self.failure,
        }


@dataclass
class RunRecords:
    """Everything the plugin recorded for one pytest run."""

    results: dict[str, TestResult] = field(default_factory=dict)
    selected: dict[str, tuple[str, ...]] = field(default_factory=dict)
    deselected: dict[str, tuple[str, ...]] = field(default_factory=dict)
    collect_errors: dict[str, str] = field(default_factory=dict)
    total: int | None = None
    exitstatus: int | None = None

    def add(self, rec: dict[str, Any]) -> None:
        """Fold one record in; unknown kinds are ignored (newer plugin, older reader)."""
        kind = rec.get("kind")
        nodeid = str(rec.get("nodeid", ""))
        reqs = tuple(str(r) for r in rec.get("reqs", ()))
        if kind == "result":
            self.results[nodeid] = TestResult(
                nodeid=nodeid,
                reqs=reqs,
                outcome=str(rec["outcome"]),
                duration_s=float(rec.get("duration_s", 0.0)),
                stdout=str(rec.get("stdout", "")),
                stderr=str(rec.get("stderr", "")),
                log=str(rec.get("log", "")),
                failure=str(rec.get("failure", "")),
            )
        elif kind == "item":
            self.selected[nodeid] = reqs
        elif kind == "deselected":
            self.deselected[nodeid] = reqs
        elif kind == "collect-error":
            self.collect_errors[nodeid] = str(rec.get("text", ""))
        elif kind == "total":
            self.total = max(self.total or 0, int(rec["count"]))
        elif kind == "session":
            self.exitstatus = int(rec["exitstatus"])

    @property
    def done(self) -> int:
        return len(self.results)

    @property
    def failures(self) -> int:
        return sum(1 for r in self.results.values() if r.outcome in FAILING)

    def all_tests(self) -> list[TestResult]:
        """Every test known: run ones, selected ones that never reported, deselected ones."""
        tests = dict(self.results)
        for nodeid, reqs in self.selected.items():
            tests.setdefault(nodeid, TestResult(nodeid, reqs, "not-run"))
        for nodeid, reqs in self.deselected.items():
            tests.setdefault(nodeid, TestResult(nodeid, reqs, "deselected"))
        return sorted(tests.values(), key=lambda t: t.nodeid)


class RecordTail:
    """Incrementally read complete lines from every ``*.jsonl`` in a directory."""

    def __init__(self, directory: Path, records: RunRecords | None = None) -> None:
        self.directory = directory
        self.records = records if records is not None else RunRecords()
        self._offsets: dict[Path, int] = {}

    def poll(self) -> RunRecords:
        """Read what was appended since the last poll; a partial last line waits."""
        for path in sorted(self.directory.glob("*.jsonl")):
            start = self._offsets.get(path, 0)
            with path.open("rb") as fh:
                fh.seek(start)
                chunk = fh.read()
            end = chunk.rfind(b"\n") + 1
            if end == 0:
                continue
            self._offsets[path] = start + end
            for line in chunk[:end].splitlines():
                if line.strip():
                    self.records.add(json.loads(line))
        return self.records
