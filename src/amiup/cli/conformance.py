"""`amiup conformance`: run the requirement suite and write the HTML + JSON evidence report.

Exit status: 0 when every catalog requirement is met by a passing test in a complete run,
1 when any requirement failed or is a gap (or the run was incomplete), 2 on usage errors.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from amiup.conformance.catalog import load_catalog
from amiup.conformance.report import exit_code
from amiup.conformance.results import RunRecords
from amiup.conformance.runner import run_conformance
from amiup.conformance.statements import load_statements

_COLUMNS = ("requirements", "met", "failed", "gap", "tests")

app = typer.Typer(help="Requirement conformance suite and evidence report (CONF-1).")


@app.command()
def run(
    out: Annotated[Path, typer.Option("--out", help="Directory for the report.")] = Path(
        "conformance-report"
    ),
    tests: Annotated[
        Path | None,
        typer.Option("--tests", help="Test directory or file (default: the amiup tests/)."),
    ] = None,
    keyword: Annotated[str | None, typer.Option("-k", help="pytest -k expression (a partial run).")] = None,
    catalog: Annotated[
        Path | None,
        typer.Option("--catalog", help="Requirement catalog markdown (default: the shipped one)."),
    ] = None,
    statements: Annotated[
        Path | None,
        typer.Option("--statements", help="Vendor statements TOML (default: the shipped one)."),
    ] = None,
    workers: Annotated[
        int, typer.Option("--workers", help="Run tests in N processes (pytest-xdist); 0: one.")
    ] = 0,
    pytest_arg: Annotated[
        list[str] | None,
        typer.Option("--pytest-arg", help="Extra argument for pytest (repeatable)."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Run the requirement test suite and write conformance.html and conformance.json."""
    console = Console(stderr=True)
    cat = load_catalog(catalog)
    stmts = load_statements(statements)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failed"),
        TimeElapsedColumn(),
        console=console,
        disable=quiet,
        transient=True,
    ) as bar:
        task = bar.add_task("collecting", total=None, failed=0)

        def show(records: RunRecords) -> None:
            desc = "running tests" if records.total is not None else "collecting"
            bar.update(
                task,
                description=desc,
                total=records.total,
                completed=records.done,
                failed=records.failures,
            )

        outcome = run_conformance(
            out,
            tests=tests,
            keyword=keyword,
            catalog=cat,
            statements=stmts,
            workers=workers,
            pytest_args=tuple(pytest_arg or ()),
            progress=show,
        )
    report = outcome.report
    s = report["summary"]
    table = Table(title=f"Conformance: {report['verdict']}", show_header=True)
    for col in _COLUMNS:
        table.add_column(col, justify="right")
    table.add_row(*(str(s[c]) for c in _COLUMNS))
    Console().print(table)
    for q in report["requirements"]:
        if q["status"] != "met":
            typer.echo(f"  {q['status'].upper():6} {q['id']}: {q['reason']}")
    if not s["run_complete"]:
        typer.echo(f"  incomplete run: pytest exit {report['run']['pytest_exit']}, see {outcome.output_path}")
    typer.echo(f"report: {outcome.html_path}")
    typer.echo(f"data:   {outcome.json_path}")
    # sys.exit, not typer.Exit: the code must survive click's standalone_mode=False in main().
    sys.exit(exit_code(report))
