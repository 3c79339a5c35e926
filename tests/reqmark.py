"""``@req("SEC-1")``: mark a test as demonstrating catalog requirements (conformance maps them)."""

from __future__ import annotations

import pytest


def req(*ids: str) -> pytest.MarkDecorator:
    """Shorthand for ``pytest.mark.req(*ids)``."""
    return pytest.mark.req(*ids)
