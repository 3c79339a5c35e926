"""Vendor statements (NISTIR 7823): amiup's one-sentence claim of how it meets each requirement.

The statements ship in ``statements.toml`` beside this module so the report can show the
vendor's claim next to the test evidence, as a conformance test lab records them.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

from amiup.errors import error

PACKAGED_STATEMENTS = "statements.toml"


def parse_statements(text: str, *, source: str = "<text>") -> dict[str, str]:
    """Parse the ``[statements]`` table of ID -> sentence."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as ex:
        raise error("invalid-argument", f"{source}: {ex}") from None
    table = data.get("statements", {})
    if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
        raise error("invalid-argument", f"{source}: [statements] must map IDs to strings")
    return {str(k): v.strip() for k, v in table.items()}


def load_statements(path: Path | None = None) -> dict[str, str]:
    """Load ``path``, or the statements shipped with the package when ``path`` is None."""
    if path is None:
        res = resources.files("amiup.conformance").joinpath(PACKAGED_STATEMENTS)
        return parse_statements(res.read_text(encoding="utf-8"), source=PACKAGED_STATEMENTS)
    try:
        return parse_statements(path.read_text(encoding="utf-8"), source=str(path))
    except FileNotFoundError:
        raise error("invalid-argument", f"statements file not found: {path}") from None
