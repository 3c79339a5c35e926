"""`amiup meter`: create a reference meter in a folder, read its status, images and log.

The folder is the meter's flash (``DirStorage``); each command powers the meter up at the
wall-clock time, acts, and powers it down. Do not run these while ``amiup meter serve`` uses
the same folder.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from amiup import COMPONENTS
from amiup.errors import error
from amiup.meter import DirStorage, Meter, make_image, provision
from amiup.meter.eventlog import verify_export
from amiup.meter.firmware import FAULTS
from amiup.package import write_atomic
from amiup.trust import TrustAnchors, key_id, load_public_key, save_public_key

app = typer.Typer(help="The reference smart meter (simulated hardware, real upgrade logic).",
                  no_args_is_help=True)


def open_meter(data_dir: Path, now: float | None = None) -> Meter:
    """Power up the meter stored in ``data_dir`` (boot = recovery)."""
    if not (data_dir / "rec" / "meter").is_dir():
        raise error("not-found", f"no meter in {data_dir} (run `amiup meter init` first)")
    meter = Meter(DirStorage(data_dir))
    meter.boot(time.time() if now is None else now)
    return meter


def _versions(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        comp, sep, ver = item.partition("=")
        if not sep or comp not in COMPONENTS:
            raise error("invalid-argument",
                        f"--component {item!r}: expected C=VERSION, C in {', '.join(COMPONENTS)}")
        out[comp] = ver
    return out


@app.command("init")
def init(
    data_dir: Annotated[Path, typer.Option(help="Folder that becomes the meter's flash.")],
    serial: Annotated[str, typer.Option(help="Meter serial number (its id in orders).")],
    model: Annotated[str, typer.Option(help="Meter model.")],
    hw_rev: Annotated[str, typer.Option(help="Hardware revision.")],
    vendor_key: Annotated[list[Path], typer.Option(help="Trusted vendor public key (repeat).")],
    utility_key: Annotated[list[Path], typer.Option(help="Trusted utility public key (repeat).")],
    vendor: Annotated[str, typer.Option(help="Manufacturer id.")] = "acme",
    component: Annotated[list[str] | None, typer.Option(
        help="Factory version C=VERSION (repeat; default 1.0.0 each).")] = None,
    group: Annotated[list[str] | None, typer.Option(
        help="Group the meter belongs to (repeat).")] = None,
    image_size: Annotated[int, typer.Option(help="Size of each generated factory image.")] = 65536,
) -> None:
    """Write the factory state: generated images, a fresh meter key, NV data, trust anchors."""
    anchors = TrustAnchors.create(vendor=[load_public_key(p) for p in vendor_key],
                                  utility=[load_public_key(p) for p in utility_key])
    if data_dir.exists() and any(data_dir.iterdir()):
        raise error("conflict", f"{data_dir} is not empty")
    provision(DirStorage(data_dir), serial=serial, vendor=vendor, model=model, hw_rev=hw_rev,
              anchors=anchors, groups=tuple(group or ()), versions=_versions(component or []),
              image_size=image_size, now=time.time())
    meter = open_meter(data_dir)
    save_public_key(meter.public_key, data_dir / "meter.pub")
    typer.echo(f"meter {serial} ({vendor} {model} rev {hw_rev}) in {data_dir}")
    typer.echo(f"  meter key {key_id(meter.public_key)} (public: {data_dir / 'meter.pub'})")
    for c, v in meter.identity.versions.items():
        typer.echo(f"  {c:<10} {v}")


@app.command("status")
def status(
    data_dir: Annotated[Path, typer.Option(help="The meter's folder.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Versions of each component (running, staged), upgrade states, legal version, energy."""
    meter = open_meter(data_dir)
    report = meter.status(os.urandom(8), time.time())
    if json_out:
        typer.echo(json.dumps(report.to_json(), indent=2, sort_keys=True))
        return
    typer.echo(f"meter {report.meter_id}  legal metrology version {report.legal_version}")
    typer.echo(f"{'component':<10} {'running':<9} {'seq':>4} {'staged':<9} state")
    for c, s in report.components.items():
        state = s.state + (f" ({s.code})" if s.code else "")
        if s.n_blocks:
            state += f" {s.received}/{s.n_blocks} blocks"
        typer.echo(f"{c:<10} {s.running_version:<9} {s.security_seq:>4} "
                   f"{s.staged_version or '-':<9} {state}")
    m = report.metrology
    typer.echo(f"energy {m['energy_wh'] / 1000:.3f} kWh; gaps {m['gap_seconds']:.1f} s "
               f"({m['gap_energy_wh']:.3f} Wh not measured)")
    for u in report.local_upgrades:
        typer.echo(f"local upgrade #{u.seq}: {u.component} {u.version} by {u.tool_id}: {u.outcome}")


@app.command("log")
def log(
    data_dir: Annotated[Path, typer.Option(help="The meter's folder.")],
    verify: Annotated[bool, typer.Option(help="Only check the hash chain.")] = False,
) -> None:
    """Export the meter's hash-chained event log as JSON (or check its chain)."""
    meter = open_meter(data_dir)
    data: dict[str, Any] = meter.export_log()
    n = verify_export(data, meter.log.head)
    if verify:
        typer.echo(f"event log ok: {n} entries chain from checkpoint {data['checkpoint']['seq']}")
    else:
        typer.echo(json.dumps(data, indent=2))


@app.command("image")
def image(
    data_dir: Annotated[Path, typer.Option(help="The meter's folder.")],
    component: Annotated[str, typer.Option(help="Which component.")],
    out: Annotated[Path, typer.Option(help="File to write the running image to.")],
) -> None:
    """Copy a component's running image out (the base for a delta package)."""
    meter = open_meter(data_dir)
    data = meter.slot_image(component)
    write_atomic(out, data)
    typer.echo(f"{component} {meter.identity.versions[component]}: {len(data)} bytes -> {out}")


@app.command("make-image")
def make_image_cmd(
    component: Annotated[str, typer.Option(help="Which component.")],
    version: Annotated[str, typer.Option(help="Version written into the image header.")],
    out: Annotated[Path, typer.Option(help="Image file to write.")],
    size: Annotated[int, typer.Option(help="Image size in bytes.")] = 65536,
    fault: Annotated[str | None, typer.Option(
        help=f"Make a bad image: {'|'.join(FAULTS)} (test hook).")] = None,
) -> None:
    """Generate a simulated firmware image (optionally one that misbehaves when started)."""
    if component not in COMPONENTS:
        raise error("invalid-argument", f"--component: one of {', '.join(COMPONENTS)}")
    if fault is not None and fault not in FAULTS:
        raise error("invalid-argument", f"--fault: one of {'|'.join(FAULTS)}")
    write_atomic(out, make_image(component, version, size=size, fault=fault))  # type: ignore[arg-type]
    typer.echo(f"{component} {version}{' (' + fault + ')' if fault else ''}: {size} bytes -> {out}")


# `amiup meter serve` (a meter process on CoAP/UDP) is added by amiup.network.coap's owner:
# app.command("serve")(...) below this line.
from amiup.cli.headend import serve; app.command("serve")(serve)  # noqa: E402, E702, I001
