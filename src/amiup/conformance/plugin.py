"""pytest plugin the conformance runner loads (``-p amiup.conformance.plugin``): records results.

For every test it writes one JSON line: node id, the IDs of its ``req`` markers, outcome,
duration, captured stdout/stderr/log (the evidence a test prints: figures, event logs) and
the failure text. It also records the selection (collected, deselected) and collection errors,
so a test that never reported is visible. Each process (the pytest controller, or each
pytest-xdist worker) appends to its own file in ``--amiup-conformance-dir``; only the
process that sees the final reports (the controller) writes results, so none is duplicated.
The plugin does nothing unless that option is given.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

import pytest

OPTION = "--amiup-conformance-dir"
_REQ_PROP = "amiup_req"
MAX_EVIDENCE = 64 * 1024  # characters kept per stream; longer output keeps its head and tail


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(OPTION, default=None, help="directory for amiup conformance records")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "req(id): requirement ID(s) this test demonstrates")
    out = config.getoption(OPTION)
    if out:
        config.pluginmanager.register(_Recorder(config, Path(out)), "amiup-conformance-recorder")


def _clip(text: str) -> str:
    if len(text) <= MAX_EVIDENCE:
        return text
    half = MAX_EVIDENCE // 2
    return f"{text[:half]}\n[... {len(text) - MAX_EVIDENCE} characters cut ...]\n{text[-half:]}"


def _reqs_of(item: pytest.Item) -> list[str]:
    ids: list[str] = []
    for mark in item.iter_markers("req"):
        ids.extend(str(a) for a in mark.args if str(a) not in ids)
    return ids


class _Recorder:
    """Writes the JSON lines; one instance per pytest process."""

    def __init__(self, config: pytest.Config, out: Path) -> None:
        worker = getattr(config, "workerinput", None)
        self.is_worker = worker is not None
        name = worker["workerid"] if worker is not None else "main"
        out.mkdir(parents=True, exist_ok=True)
        self.file: IO[str] = (out / f"results-{name}.jsonl").open("a", encoding="utf-8")
        self.phases: dict[str, list[pytest.TestReport]] = {}

    def _write(self, record: dict[str, Any]) -> None:
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        # Stored on the item so the IDs travel with each report (also across xdist workers).
        for item in items:
            item.user_properties.append((_REQ_PROP, _reqs_of(item)))

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        for item in items:
            self._write({"kind": "deselected", "nodeid": item.nodeid, "reqs": _reqs_of(item)})

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if not self.is_worker:
            self._write({"kind": "total", "count": len(session.items)})
        for item in session.items:
            self._write({"kind": "item", "nodeid": item.nodeid, "reqs": _reqs_of(item)})

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: object, ids: list[str]) -> None:
        self._write({"kind": "total", "count": len(ids)})

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed and not self.is_worker:
            self._write({"kind": "collect-error", "nodeid": report.nodeid, "text": report.longreprtext})

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.is_worker:
            return
        self.phases.setdefault(report.nodeid, []).append(report)
        if report.when == "teardown":
            self._write(_result(report.nodeid, self.phases.pop(report.nodeid)))

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        for nodeid, reports in self.phases.items():  # interrupted before teardown
            self._write(_result(nodeid, reports))
        self.phases.clear()
        if not self.is_worker:
            self._write({"kind": "session", "exitstatus": int(exitstatus)})
        self.file.close()


def _outcome(reports: list[pytest.TestReport]) -> tuple[str, str]:
    """Fold the setup/call/teardown reports into one outcome and its failure or skip text."""
    by_when = {r.when: r for r in reports}
    for when in ("setup", "call", "teardown"):
        r = by_when.get(when)
        if r is None:
            continue
        if r.failed:
            if when == "call":
                return ("xpassed" if hasattr(r, "wasxfail") else "failed"), r.longreprtext
            return "error", f"[{when}] {r.longreprtext}"
        if r.skipped:
            if hasattr(r, "wasxfail"):
                return "xfailed", str(r.wasxfail)
            return "skipped", _skip_reason(r)
    call = by_when.get("call")
    if call is None:
        return "error", "the test did not run to its call phase"
    return ("xpassed" if hasattr(call, "wasxfail") else "passed"), ""


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return report.longreprtext


def _result(nodeid: str, reports: list[pytest.TestReport]) -> dict[str, Any]:
    outcome, failure = _outcome(reports)
    reqs: list[str] = []
    sections: dict[str, str] = {}
    for r in reports:
        for name, value in r.user_properties:
            if name == _REQ_PROP and isinstance(value, list):
                reqs = [str(v) for v in value]
        # A later phase's report repeats the sections of the earlier ones: keep each once.
        sections.update(r.sections)
    streams: dict[str, list[str]] = {"stdout": [], "stderr": [], "log": []}
    for title, content in sections.items():
        # titles look like "Captured stdout call" / "Captured log setup"
        parts = title.split()
        if len(parts) == 3 and parts[0] == "Captured" and parts[1] in streams:
            prefix = "" if parts[2] == "call" else f"[{parts[2]}]\n"
            streams[parts[1]].append(prefix + content)
    return {
        "kind": "result",
        "nodeid": nodeid,
        "reqs": reqs,
        "outcome": outcome,
        "duration_s": round(sum(r.duration for r in reports), 6),
        "stdout": _clip("".join(streams["stdout"])),
        "stderr": _clip("".join(streams["stderr"])),
        "log": _clip("".join(streams["log"])),
        "failure": _clip(failure),
    }
