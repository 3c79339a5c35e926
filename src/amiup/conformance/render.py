"""Write the report dict as conformance.json and as one self-contained conformance.html."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

from amiup.errors import error

JSON_NAME = "conformance.json"
HTML_NAME = "conformance.html"


_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*([^*]+)\*\*")
_EM = re.compile(r"\*([^*]+)\*")


def inline_markdown(text: str) -> Markup:
    """The catalog's inline markdown (`code`, **bold**, *em*) as HTML; everything else escaped."""
    parts = _CODE.split(text)  # odd indexes are code spans: no emphasis inside them
    out: list[str] = []
    for i, part in enumerate(parts):
        html = str(escape(part))
        if i % 2:
            out.append(f"<code>{html}</code>")
        else:
            out.append(_EM.sub(r"<i>\1</i>", _BOLD.sub(r"<b>\1</b>", html)))
    return Markup("".join(out))


def render_html(report: dict[str, Any]) -> str:
    """The HTML report: inline CSS, no external resource, printable."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("amiup.conformance", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["md"] = inline_markdown
    return env.get_template("report.html").render(r=report, s=report["summary"])


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_report(report: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """Write both files into ``out_dir`` (created if needed); returns their paths."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        json_path, html_path = out_dir / JSON_NAME, out_dir / HTML_NAME
        _write_atomic(json_path, json.dumps(report, indent=2) + "\n")
        _write_atomic(html_path, render_html(report))
    except OSError as ex:
        raise error("io-error", f"cannot write the report to {out_dir}: {ex.strerror}") from None
    return json_path, html_path
