"""The filter language parser and semver keys, without a store."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from amiup.errors import AmiupError
from amiup.ums.filters import BoolOp, Cmp, compile_filter, parse
from amiup.ums.versions import version_key
from reqmark import req


@req("UMS-1", "UMS-3")
def test_parse_the_documented_example() -> None:
    node = parse("model=X and ami_comm.version<2.0 and region=north")
    assert node == BoolOp("and", (Cmp("model", "=", ("X",)),
                                  Cmp("ami_comm.version", "<", ("2.0",)),
                                  Cmp("region", "=", ("north",))))


def test_precedence_not_and_or_parentheses() -> None:
    node = parse('not cell=c1 or (model in (A, "B C") and region~"no*")')
    assert isinstance(node, BoolOp) and node.op == "or"
    assert node.children[0] == BoolOp("not", (Cmp("cell", "=", ("c1",)),))
    inner = node.children[1]
    assert inner == BoolOp("and", (Cmp("model", "in", ("A", "B C")),
                                   Cmp("region", "~", ("no*",))))


@pytest.mark.parametrize("bad", [
    "model", "model=", "model==x", "modle=x", "ami_comm.colour=1", "foo.version<1",
    "model=x and", "(model=x", "model=x)", "model in (a,", "model=x; drop table meters",
    "model<x", "ami_comm.version<banana", "last_contact>soon", 'model="x',
])
def test_malformed_filters_are_invalid_argument(bad: str) -> None:
    with pytest.raises(AmiupError) as exc:
        compile_filter(bad)
    assert exc.value.code == "invalid-argument"


@given(st.text(max_size=60))
def test_any_text_parses_or_fails_cleanly(text: str) -> None:
    try:
        compile_filter(text)
    except AmiupError as exc:
        assert exc.code in ("invalid-argument", "not-found")


@req("UMS-12")
@pytest.mark.parametrize(("a", "b"), [
    ("1.9.9", "2.0"), ("2.0.0-rc.1", "2.0.0"), ("2.0.0-rc.2", "2.0.0-rc.10"),
    ("2.0.0-alpha", "2.0.0-beta"), ("1.10.0", "1.11.0"), ("9.0.0", "10.0.0"),
    ("1.2.3", "1.2.4"), ("0.0.1", "1"),
])
def test_version_keys_sort_as_semver(a: str, b: str) -> None:
    assert version_key(a) < version_key(b)


def test_version_key_ignores_build_metadata() -> None:
    assert version_key("1.2.3+build.7") == version_key("1.2.3") == version_key("v1.2.3")
