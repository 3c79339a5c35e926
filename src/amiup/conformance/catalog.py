"""Parse the requirement catalog (markdown) into sections and requirements.

The catalog format is the one of the project's ``requirements.md``: a section is a line
``## ID - title`` and a requirement is a line ``- **ID** text`` below it (indented lines that
follow continue the text). Any other ``##`` heading ends the current section. A copy of the
catalog ships in this package, so an installed amiup can report without the source tree.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from amiup.errors import error

_SECTION = re.compile(r"^##\s+([A-Z][A-Z0-9]*)\s+-\s+(.+?)\s*$")
_HEADING = re.compile(r"^#{1,6}\s")
_REQUIREMENT = re.compile(r"^- \*\*([A-Z][A-Z0-9]*-\d+)\*\*\s+(.+?)\s*$")
_CONTINUATION = re.compile(r"^\s{2,}(\S.*?)\s*$")

PACKAGED_CATALOG = "requirements.md"


@dataclass(frozen=True, slots=True)
class Section:
    """A catalog section: its short ID (``SM``) and title."""

    id: str
    title: str


@dataclass(frozen=True, slots=True)
class Requirement:
    """One requirement: its stable ID, its text, and the section it sits in."""

    id: str
    text: str
    section: str


@dataclass(frozen=True, slots=True)
class Catalog:
    """The parsed catalog, in document order, with where it came from (for the report)."""

    sections: tuple[Section, ...]
    requirements: tuple[Requirement, ...]
    source: str
    sha256: str

    def ids(self) -> tuple[str, ...]:
        return tuple(r.id for r in self.requirements)


def parse_catalog(text: str, *, source: str = "<text>") -> Catalog:
    """Parse catalog markdown; refuse duplicate IDs and a catalog with no requirement."""
    sections: list[Section] = []
    reqs: list[Requirement] = []
    seen: set[str] = set()
    current: str | None = None
    last: Requirement | None = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        if m := _SECTION.match(line):
            current = m.group(1)
            sections.append(Section(current, m.group(2)))
            last = None
        elif _HEADING.match(line):
            current, last = None, None
        elif m := _REQUIREMENT.match(line):
            rid = m.group(1)
            if current is None:
                raise error("invalid-argument", f"{source}:{lineno}: {rid} is outside a section")
            if rid in seen:
                raise error("invalid-argument", f"{source}:{lineno}: duplicate requirement {rid}")
            seen.add(rid)
            last = Requirement(rid, m.group(2), current)
            reqs.append(last)
        elif last is not None and (m := _CONTINUATION.match(line)):
            last = Requirement(last.id, f"{last.text} {m.group(1)}", last.section)
            reqs[-1] = last
        else:
            last = None
    if not reqs:
        raise error("invalid-argument", f"{source}: no requirement lines (- **ID** text) found")
    digest = hashlib.sha256(text.encode()).hexdigest()
    return Catalog(tuple(sections), tuple(reqs), source, digest)


def load_catalog(path: Path | None = None) -> Catalog:
    """Load ``path``, or the catalog shipped inside the package when ``path`` is None."""
    if path is None:
        res = resources.files("amiup.conformance").joinpath(PACKAGED_CATALOG)
        return parse_catalog(res.read_text(encoding="utf-8"), source=f"amiup:{PACKAGED_CATALOG}")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error("invalid-argument", f"catalog not found: {path}") from None
    except OSError as ex:
        raise error("io-error", f"cannot read catalog {path}: {ex.strerror}") from None
    return parse_catalog(text, source=str(path))
