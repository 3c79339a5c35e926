"""Verdict rules and rendering of the report, from hand-made records (no pytest child)."""

from __future__ import annotations

from html.parser import HTMLParser

from amiup.conformance.catalog import parse_catalog
from amiup.conformance.render import inline_markdown, render_html
from amiup.conformance.report import RunInfo, build_report, exit_code
from amiup.conformance.results import RunRecords
from reqmark import req
from support_conformance import CATALOG

CAT = parse_catalog(CATALOG)


def _run(pytest_exit: int | None = 1) -> RunInfo:
    return RunInfo(
        generated="2026-01-01T00:00:00Z",
        duration_s=1.0,
        command=("python", "-m", "pytest"),
        tests_path="suite",
        keyword=None,
        pytest_exit=pytest_exit,
        amiup_version="0",
        python="3.11",
        platform="test",
    )


def _records(*results: tuple[str, tuple[str, ...], str]) -> RunRecords:
    recs = RunRecords()
    for nodeid, reqs, outcome in results:
        recs.add({"kind": "item", "nodeid": nodeid, "reqs": list(reqs)})
        recs.add(
            {
                "kind": "result",
                "nodeid": nodeid,
                "reqs": list(reqs),
                "outcome": outcome,
                "stdout": f"out of {nodeid}",
                "failure": "boom" if outcome == "failed" else "",
            }
        )
    recs.add({"kind": "session", "exitstatus": 1})
    return recs


def _status(report: dict[str, object]) -> dict[str, str]:
    return {q["id"]: q["status"] for q in report["requirements"]}  # type: ignore[attr-defined]


@req("CONF-1")
def test_met_failed_and_gap_rules() -> None:
    recs = _records(
        ("t::a", ("X-1",), "passed"),
        ("t::b", ("X-2",), "failed"),
        ("t::c", ("X-3",), "skipped"),
        ("t::d", ("X-5",), "passed"),
        ("t::e", ("X-5",), "error"),
        ("t::f", ("Y-1",), "xfailed"),
    )
    report = build_report(CAT, {}, recs, _run())
    assert _status(report) == {
        "X-1": "met",
        "X-2": "failed",
        "X-3": "gap",
        "X-4": "gap",
        "X-5": "failed",
        "Y-1": "gap",
    }
    reasons = {q["id"]: q["reason"] for q in report["requirements"]}
    assert reasons["X-4"] == "no test carries this requirement ID"
    assert reasons["X-3"] == "no passing test (1 skipped)"
    assert report["summary"] | {"outcomes": None} == {
        "requirements": 6,
        "met": 1,
        "failed": 2,
        "gap": 3,
        "tests": 6,
        "outcomes": None,
        "unmarked_tests": 0,
        "run_complete": True,
    }
    assert report["verdict"] == "not conformant"
    assert exit_code(report) == 1


@req("CONF-1")
def test_all_met_is_conformant_only_when_the_run_completed() -> None:
    recs = _records(("t::all", ("X-1", "X-2", "X-3", "X-4", "X-5", "Y-1"), "passed"))
    assert exit_code(build_report(CAT, {}, recs, _run(0))) == 0
    interrupted = build_report(CAT, {}, recs, _run(2))
    assert interrupted["summary"]["run_complete"] is False
    assert exit_code(interrupted) == 1
    recs.add({"kind": "collect-error", "nodeid": "tests/test_x.py", "text": "ImportError"})
    broken = build_report(CAT, {}, recs, _run(0))
    assert exit_code(broken) == 1
    assert broken["findings"]["collection_errors"] == [{"nodeid": "tests/test_x.py", "text": "ImportError"}]


@req("CONF-1")
def test_deselected_and_unreported_tests_leave_a_gap() -> None:
    recs = RunRecords()
    recs.add({"kind": "deselected", "nodeid": "t::d", "reqs": ["X-1"]})
    recs.add({"kind": "item", "nodeid": "t::lost", "reqs": ["X-2"]})  # never reported
    report = build_report(CAT, {}, recs, _run(3))
    by_id = {q["id"]: q for q in report["requirements"]}
    assert by_id["X-1"]["status"] == "gap"
    assert by_id["X-1"]["reason"] == "no passing test (1 deselected)"
    assert by_id["X-2"]["tests"][0]["outcome"] == "not-run"
    assert by_id["X-2"]["status"] == "gap"


@req("CONF-1")
def test_unknown_ids_and_unmarked_tests_are_findings() -> None:
    recs = _records(("t::typo", ("X-77",), "passed"), ("t::helper", (), "failed"))
    report = build_report(CAT, {"X-1": "claim"}, recs, _run())
    assert report["findings"]["unknown_ids"] == [{"id": "X-77", "tests": ["t::typo"]}]
    assert report["findings"]["unmarked_tests"] == [
        {"nodeid": "t::helper", "outcome": "failed", "failure": "boom"}
    ]
    assert report["requirements"][0]["vendor_statement"] == "claim"


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


@req("CONF-1")
def test_html_is_self_contained_and_escapes_test_output() -> None:
    recs = _records(("t::x<1>", ("X-1",), "passed"))
    recs.add(
        {
            "kind": "result",
            "nodeid": "t::evil",
            "reqs": ["X-2"],
            "outcome": "failed",
            "stdout": "<img src=x onerror=alert(1)>",
            "failure": "</pre><script>bad()</script>",
        }
    )
    html = render_html(build_report(CAT, {"X-1": "Claim & proof"}, recs, _run()))
    assert "<img src=x" not in html and "<script>bad()" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "Claim &amp; proof" in html
    parser = _Tags()
    parser.feed(html)
    tags = parser.tags
    assert [t for t, _ in tags].count("script") == 1  # only the print helper
    assert not [t for t, a in tags if t in ("link", "img", "iframe") or a.get("src")]
    assert all((a.get("href") or "#").startswith("#") for t, a in tags if t == "a")
    assert "<style>" in html


@req("CONF-1")
def test_catalog_inline_markdown_rendered_and_escaped() -> None:
    html = inline_markdown("run `amiup <x> CONF-*` on **local** and *remote* <b>paths</b>")
    assert html == (
        "run <code>amiup &lt;x&gt; CONF-*</code> on <b>local</b> and <i>remote</i> &lt;b&gt;paths&lt;/b&gt;"
    )
