"""Semantic versions turned into sortable keys, so SQL compares versions as semver does.

Inventory and catalog rows carry a ``*_key`` column next to each version string; a filter like
``ami_comm.version<2.0`` compiles to a plain string comparison on that key, which works the
same on SQLite and PostgreSQL and uses an index. Numbers are zero-padded; a release sorts after
its pre-releases (``~`` > ``-``); build metadata is ignored as semver says.
"""

from __future__ import annotations

import re

from amiup.errors import error

_SEMVER = re.compile(
    r"^v?(0|[1-9]\d{0,7})(?:\.(0|[1-9]\d{0,7}))?(?:\.(0|[1-9]\d{0,7}))?"
    r"(?:-([0-9A-Za-z.-]{1,64}))?(?:\+[0-9A-Za-z.-]{1,64})?$"
)


def parse(version: str) -> tuple[int, int, int, str]:
    """Split ``1.2.3-rc.1`` into (1, 2, 3, "rc.1"); ``2.0`` means 2.0.0; raise on junk."""
    m = _SEMVER.match(version.strip())
    if m is None:
        raise error("invalid-argument", f"not a semantic version: {version!r}")
    major, minor, patch, pre = m.groups()
    return int(major), int(minor or 0), int(patch or 0), pre or ""


def version_key(version: str) -> str:
    """Sortable string key of ``version``: ``key(a) < key(b)`` iff semver says a < b."""
    major, minor, patch, pre = parse(version)
    head = f"{major:08d}.{minor:08d}.{patch:08d}"
    if not pre:
        return head + "~"
    parts = [f"{int(p):08d}" if p.isdigit() else p for p in pre.split(".")]
    return head + "-" + ".".join(parts)


def try_key(version: str | None) -> str | None:
    """Key of ``version``, or None when it is absent or not semver (kept, but unsortable)."""
    if not version:
        return None
    try:
        return version_key(version)
    except Exception:
        return None
