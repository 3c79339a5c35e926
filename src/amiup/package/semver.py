"""Semantic versions as meters compare them: numeric ``major.minor.patch[-pre]``."""

from __future__ import annotations

import re
from functools import total_ordering

from amiup.errors import error

_RE = re.compile(r"^(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})(?:-([0-9A-Za-z.-]{1,32}))?$")


@total_ordering
class Version:
    """A parsed version; a pre-release sorts before its release (semver s.11, simplified)."""

    __slots__ = ("major", "minor", "patch", "pre", "text")

    def __init__(self, text: str) -> None:
        m = _RE.match(text) if isinstance(text, str) else None
        if not m:
            raise error("invalid-argument", f"{text!r} is not a version like 1.2.3")
        self.major, self.minor, self.patch = int(m[1]), int(m[2]), int(m[3])
        self.pre = m[4] or ""
        self.text = text

    def _key(self) -> tuple[int, int, int, int, str]:
        return (self.major, self.minor, self.patch, 0 if self.pre else 1, self.pre)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Version) and self._key() == other._key()

    def __lt__(self, other: Version) -> bool:
        return self._key() < other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Version({self.text!r})"


def is_version(text: object) -> bool:
    return isinstance(text, str) and bool(_RE.match(text))


OPS = (">=", "<=", "==", "!=", ">", "<")


def satisfies(have: str, op: str, want: str) -> bool:
    """``have op want``, e.g. ``satisfies("2.1.0", ">=", "2.0.0")``."""
    a, b = Version(have), Version(want)
    return {">=": a >= b, "<=": a <= b, "==": a == b, "!=": a != b, ">": a > b, "<": a < b}[op]
