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


def _register() -> None:
    """Attach sub-apps; each lives in its own module under amiup.cli."""
    from amiup.cli import demo, keys, package

    app.add_typer(keys.app, name="keys")
    app.add_typer(package.app, name="package")
    app.command("demo")(demo.demo)
    # Sub-apps of later parts register here, one line each.
    from amiup.cli import conformance; app.command("conformance")(conformance.run)  # noqa: E702, I001
    from amiup.cli import fieldtool, meter; app.add_typer(meter.app, name="meter"); app.add_typer(fieldtool.app, name="fieldtool")  # noqa: E501, E702, I001
    from amiup.cli import ums; app.add_typer(ums.app, name="ums")  # noqa: E702, I001


def fail(err: AmiupError) -> NoReturn:
    """Print ``error: CODE: explanation (detail)`` on one line and exit with the family's code."""
    typer.echo(f"error: {err.message}", err=True)
    raise typer.Exit(err.exit_code)


def main() -> None:
    """Entry point: no traceback ever reaches a user; errors print one line."""
    _register()
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
