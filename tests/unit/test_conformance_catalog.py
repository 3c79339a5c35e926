"""The requirement catalog parser and the shipped catalog and vendor statements."""

from __future__ import annotations

import tomllib
from pathlib import Path, PurePosixPath

import pytest

from amiup.conformance.catalog import load_catalog, parse_catalog
from amiup.conformance.statements import load_statements, parse_statements
from amiup.errors import UsageError
from reqmark import req
from support_conformance import CATALOG

SHARED_CATALOG = Path(__file__).resolve().parents[2] / ".." / "shared" / "spec" / "requirements.md"


@req("CONF-1")
def test_sections_requirements_and_continuation_lines_parsed() -> None:
    cat = parse_catalog(CATALOG, source="synthetic")
    assert [(s.id, s.title) for s in cat.sections] == [
        ("X", "Example section"),
        ("Y", "Second section"),
    ]
    assert cat.ids() == ("X-1", "X-2", "X-3", "X-4", "X-5", "Y-1")
    x2 = cat.requirements[1]
    assert x2.section == "X"
    assert x2.text == "The meter refuses a bad image. A continuation line belongs to X-2."
    assert cat.requirements[-1].section == "Y"


@req("CONF-1")
def test_other_heading_ends_a_section() -> None:
    text = "## A - Alpha\n- **A-1** one\n## Reference picture\n- **B-1** stray\n"
    with pytest.raises(UsageError, match="B-1 is outside a section"):
        parse_catalog(text)


@req("CONF-1")
def test_duplicate_id_refused() -> None:
    with pytest.raises(UsageError, match="duplicate requirement A-1"):
        parse_catalog("## A - Alpha\n- **A-1** one\n- **A-1** again\n")


@req("CONF-1")
def test_catalog_without_requirements_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no requirement lines"):
        parse_catalog("# nothing here\n\n## A - Alpha\ntext only\n")
    with pytest.raises(UsageError, match="catalog not found"):
        load_catalog(tmp_path / "missing.md")


@req("CONF-1")
def test_shipped_catalog_has_every_section_and_conf_1() -> None:
    cat = load_catalog()
    assert [s.id for s in cat.sections] == ["G", "SM", "MET", "AMI", "HAN", "UMS", "SEC", "CONF"]
    assert "CONF-1" in cat.ids()
    assert len(cat.ids()) == len(set(cat.ids())) >= 40
    for r in cat.requirements:
        assert r.id.split("-")[0] == r.section, r.id


@req("CONF-1")
@pytest.mark.skipif(not SHARED_CATALOG.is_file(), reason="shared/spec not beside the repo")
def test_shipped_catalog_is_a_current_copy_of_the_spec() -> None:
    # If this fails, re-copy shared/spec/requirements.md into src/amiup/conformance/.
    shared = parse_catalog(SHARED_CATALOG.read_text(encoding="utf-8"))
    assert load_catalog().sha256 == shared.sha256


@req("CONF-1")
def test_every_requirement_has_exactly_one_vendor_statement() -> None:
    statements = load_statements()
    ids = set(load_catalog().ids())
    assert set(statements) == ids
    for rid, sentence in statements.items():
        assert 20 < len(sentence) < 300, rid


@req("CONF-1")
def test_statements_file_must_map_ids_to_text() -> None:
    assert parse_statements('[statements]\n"X-1" = " a claim "\n') == {"X-1": "a claim"}
    with pytest.raises(UsageError):
        parse_statements('[statements]\n"X-1" = 3\n')
    with pytest.raises(UsageError):
        parse_statements("[statements\n")


@req("CONF-1")
def test_data_files_are_declared_as_package_data() -> None:
    # An installed amiup must report without the source tree: the catalog, the statements
    # and the template have to be in pyproject's package-data, or a wheel leaves them out.
    root = Path(__file__).resolve().parents[2]
    globs = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"][
        "package-data"
    ]["amiup"]
    pkg = root / "src" / "amiup"
    data = [
        p.relative_to(pkg)
        for p in (pkg / "conformance").rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc")
    ]
    assert {p.name for p in data} >= {"requirements.md", "statements.toml", "report.html"}
    missing = [
        str(p)
        for p in data
        if not any(len(p.parts) == len(PurePosixPath(g).parts) and p.match(g) for g in globs)
    ]
    assert missing == [], "add to [tool.setuptools.package-data]: conformance/*.md, *.toml"
