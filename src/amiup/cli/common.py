"""Small helpers the CLI sub-apps share: reading input files and parsing `--activate`."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from amiup.errors import error


def read_file(path: Path, what: str) -> bytes:
    """The file's bytes, or a one-line `not-found` / `invalid-argument` / `io-error`."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise error("not-found", f"no {what} file {path}") from None
    except IsADirectoryError:
        raise error("invalid-argument", f"{path} is a folder, not a {what} file") from None
    except OSError as ex:
        raise error("io-error", f"{path}: {ex.strerror}") from None


def parse_activation(text: str) -> str | int:
    """`--activate now | on-command | at:ISO-8601` -> "now", "on-command" or a unix time."""
    if text in ("now", "on-command"):
        return text
    if text.startswith("at:"):
        try:
            when = datetime.fromisoformat(text[3:])
        except ValueError:
            raise error("invalid-argument", f"--activate {text!r}: bad ISO-8601 time") from None
        if when.tzinfo is None:
            raise error("invalid-argument", "--activate at:TIME needs a time zone, e.g. Z or +00:00")
        return int(when.timestamp())
    raise error("invalid-argument", f"--activate {text!r}: now | on-command | at:ISO-TIME")
