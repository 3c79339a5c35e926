"""The `amiup` command: one Typer app with a sub-app per part of the system."""

from __future__ import annotations

import sys
from typing import NoReturn

import typer

from amiup.errors import EXIT_USAGE, AmiupError

app = typer.Typer(
    name="amiup",
    help="Secure firmware upgrade for smart meters (NEMA SG-AMI 1).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """Secure firmware upgrade for smart meters (NEMA SG-AMI 1)."""
    # A root callback keeps Typer from folding a lone registered command into the root app.


# name -> (module, attribute, "group" for a sub-app | "command" for a single command)
SUBCOMMANDS: dict[str, tuple[str, str, str]] = {
    "keys": ("amiup.cli.keys", "app", "group"),
    "package": ("amiup.cli.package", "app", "group"),
    "meter": ("amiup.cli.meter", "app", "group"),
    "fieldtool": ("amiup.cli.fieldtool", "app", "group"),
    "headend": ("amiup.cli.headend", "app", "group"),
    "ums": ("amiup.cli.ums", "app", "group"),
    "sim": ("amiup.cli.sim", "sim", "command"),
    "demo": ("amiup.cli.demo", "demo", "command"),
    "conformance": ("amiup.cli.conformance", "run", "command"),
}


def _register(argv: list[str] | None = None) -> None:
    """Attach sub-apps, importing only the one asked for when we can tell.

    The parts pull in heavy libraries (SQLAlchemy, FastAPI, aiocoap, numpy); importing all of
    them for `amiup package verify` would cost a second on every call.
    """
    import importlib

    first = next((a for a in (argv or []) if not a.startswith("-")), None)
    names = [first] if first in SUBCOMMANDS else list(SUBCOMMANDS)
    for name in names:
        module, attr, kind = SUBCOMMANDS[name]
        obj = getattr(importlib.import_module(module), attr)
        if kind == "group":
            app.add_typer(obj, name=name)
        else:
            app.command(name)(obj)


def fail(err: AmiupError) -> NoReturn:
    """Print ``error: CODE: explanation (detail)`` on one line and exit with the family's code."""
    typer.echo(f"error: {err.message}", err=True)
    raise typer.Exit(err.exit_code)


def main() -> None:
    """Entry point: no traceback ever reaches a user; errors print one line."""
    _register(sys.argv[1:])
    try:
        # Without standalone mode click returns (not raises) a command's typer.Exit code.
        rc = app(standalone_mode=False)
        sys.exit(rc if isinstance(rc, int) else 0)
    except AmiupError as err:
        typer.echo(f"error: {err.message}", err=True)
        sys.exit(err.exit_code)
    except typer.Exit as ex:
        sys.exit(ex.exit_code)
    except typer.Abort:
        typer.echo("error: aborted", err=True)
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        typer.echo("error: interrupted", err=True)
        sys.exit(130)
    except Exception as ex:  # usage errors of Typer's (vendored) click, and the unexpected
        if hasattr(ex, "format_message") and hasattr(ex, "exit_code"):
            msg = " ".join(str(ex.format_message()).split())
            if msg:  # empty when help was shown for a bare group command
                typer.echo(f"error: invalid-argument: {msg}", err=True)
            sys.exit(EXIT_USAGE)
        typer.echo(f"error: internal: {type(ex).__name__}: {ex}", err=True)
        sys.exit(70)
