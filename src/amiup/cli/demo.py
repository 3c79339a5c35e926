"""`amiup demo`: the main job end to end on the embedded defaults, narrated."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from amiup.errors import AmiupError, error

console = Console()


def _package_checks(work: Path) -> None:
    """Show the package's own defences on the demo package: tampering and a forged signer."""
    from amiup.package import build_package, verify_package
    from amiup.trust import TrustAnchors, generate_key, load_public_key

    data = (work / "ami_app-2.0.0.amiup").read_bytes()
    anchors = TrustAnchors.create(vendor=[load_public_key(work / "keys" / "vendor.pub")])
    res = verify_package(data, anchors)
    console.print(f"   verify ami_app-2.0.0.amiup: [green]ok[/] ({len(data)} bytes, signed by "
                  f"{res.signer_ids[0][:16]}…)")
    bad = bytearray(data)
    bad[len(bad) // 2] ^= 0x01
    for what, blob in (("one flipped bit", bytes(bad)),
                       ("signed by an unknown key", build_package(
                           b"\0" * 64, component="ami_app", version="9.0.0", security_seq=9,
                           vendor="acme", model="AX-1", hw_revs=["A"],
                           sign_keys=[generate_key()]))):
        try:
            verify_package(blob, anchors)
            raise error("invalid-state", f"{what}: the package was NOT rejected")
        except AmiupError as ex:
            if ex.code == "invalid-state":
                raise
            console.print(f"   {what}: [red]rejected[/] error: {ex.code}")


def demo(
    meters: Annotated[int, typer.Option(help="Meters in the simulated fleet (1..2000).")] = 20,
    cells: Annotated[int, typer.Option(help="Collector cells the meters are spread over.")] = 4,
    loss: Annotated[float, typer.Option(help="Block loss on the simulated RF mesh (0..0.5).")] = 0.05,
    out: Annotated[Path | None, typer.Option(help="Folder for keys, store, exports (default: temp).")] = None,
) -> None:
    """Sign a package, import it, run an approved campaign over the simulated network to real
    reference meters, confirm each by reading its version back, verify the audit trail."""
    from amiup.fleet.demo import run_demo

    if not 1 <= meters <= 2000:
        raise error("invalid-argument", "--meters must be 1..2000 (real meter agents)")
    if not 1 <= cells <= meters:
        raise error("invalid-argument", "--cells must be 1..--meters")
    if not 0 <= loss <= 0.5:
        raise error("invalid-argument", "--loss must be in [0, 0.5]")
    work = out or Path(tempfile.mkdtemp(prefix="amiup-demo-"))
    if out is not None and out.exists() and any(out.iterdir()):
        raise error("conflict", f"{out} is not empty (the demo makes a fresh store there)")
    console.rule("[bold]amiup demo: one campaign, end to end")
    console.print(f"working folder: {work}")
    bar = Progress(TextColumn("   {task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[detail]}"), console=console, transient=False)
    task: list[Any] = []

    def step(name: str, info: dict[str, Any]) -> None:
        if name == "keys":
            console.print(f"1. vendor and utility keys (ES256) in {info['dir']}")
        elif name == "meters":
            console.print(f"2. {info['count']} reference meters provisioned with the trust anchors")
        elif name == "catalog":
            console.print(f"3. ami_app 2.0.0 signed by the vendor, imported into the catalog "
                          f"(verified on import; digest {info['digest'][:16]}…)")
        elif name == "inventory":
            console.print(f"4. inventory built from {info['meters']} signed status reports "
                          f"({info['cells']} cells)")
        elif name == "campaign":
            console.print(f"5. campaign {info['id']} created by olga (operator), approved by arno "
                          "(approver), started: pilot, then waves per cell")
            bar.start()
            task.append(bar.add_task("confirmed (version read back)", total=meters, detail=""))
        elif name == "progress" and task:
            states = info["states"]
            moving = {k: v for k, v in states.items() if v and k != "confirmed"}
            bar.update(task[0], completed=states.get("confirmed", 0),
                       detail=" ".join(f"{k}={v}" for k, v in moving.items()))

    try:
        res = run_demo(work, meters=meters, cells=cells, loss=loss, progress=step)
    finally:
        if task:
            bar.stop()
    t = Table(title="6. result", show_header=False)
    t.add_row("campaign", res.campaign_state)
    t.add_row("confirmed", f"{res.confirmed} of {res.meters} (each after reading 2.0.0 back)")
    t.add_row("assignment states", ", ".join(f"{k}={v}" for k, v in res.states.items()))
    t.add_row("failures", ", ".join(f"{k}={v}" for k, v in res.failure_reasons.items()) or "none")
    t.add_row("inventory ami_app", ", ".join(f"{k}: {v}" for k, v in res.running.items()))
    t.add_row("network time (virtual)", f"{res.network_s / 60:.1f} min on rf-mesh, loss {loss:.0%}")
    t.add_row("audit trail", f"{res.audit_rows} rows, hash chain "
              + ("[green]verified[/]" if res.audit_ok else "[red]BROKEN[/]"))
    t.add_row("exports", ", ".join(str(p.name) for p in res.files.values()))
    console.print(t)
    console.print("7. the package's own defences:")
    _package_checks(work)
    if res.confirmed != res.meters or not res.audit_ok:
        console.rule("[bold red]demo finished with failures")
        raise typer.Exit(1)
    console.rule("[bold green]demo finished")
