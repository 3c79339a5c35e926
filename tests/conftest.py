"""Shared test setup: the `req` marker ties each test to requirement IDs in the catalog."""

from __future__ import annotations

import re

import pytest

_REQ_ID = re.compile(r"^(G|SM|MET|AMI|HAN|UMS|SEC|CONF)-\d+$")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Refuse a req marker that names no catalog-shaped ID (typos would hide gaps)."""
    for item in items:
        for mark in item.iter_markers("req"):
            for rid in mark.args:
                if not _REQ_ID.match(str(rid)):
                    raise pytest.UsageError(f"{item.nodeid}: bad requirement id {rid!r}")
