"""`amiup sim`: simulate a fleet delivery and report times, airtime and efficiency vs the floor."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from amiup.errors import error
from amiup.headend.fleetmodel import FleetConfig, FleetResult, simulate
from amiup.network.profiles import PROFILES, profile


def _fmt_s(v: float | None) -> str:
    if v is None:
        return "never"
    if v < 120:
        return f"{v:.1f} s"
    if v < 7200:
        return f"{v / 60:.1f} min"
    return f"{v / 3600:.2f} h"


def sim(
    meters: Annotated[int, typer.Option(help="Meters in the fleet.")] = 10_000,
    strategy: Annotated[str, typer.Option(help="unicast | multicast")] = "multicast",
    delta: Annotated[bool, typer.Option("--delta", help="Send a delta (about 10% of the image).")] = False,
    loss: Annotated[float | None, typer.Option(help="Block loss per receiver (default: profile's).")] = None,
    net: Annotated[str, typer.Option("--profile", help=f"Network: {' | '.join(PROFILES)}")] = "rf-mesh",
    image_kib: Annotated[int, typer.Option(help="Full image size in KiB.")] = 1024,
    share: Annotated[float, typer.Option(help="Share of cell airtime upgrades may use (AMI-3).")] = 1.0,
    offline: Annotated[float, typer.Option(help="Share of meters that drop mid-transfer and return.")] = 0.0,
    lost: Annotated[float, typer.Option(help="Share of meters that never come back.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Random seed (runs are deterministic).")] = 1,
    direct_readback: Annotated[bool, typer.Option(
        "--direct-readback",
        help="Every meter answers the read-back itself (no gathering up the mesh).")] = False,
    detailed: Annotated[bool, typer.Option(
        "--detailed", help="Run real meter agents, one event per frame (<= 2000 meters).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Simulate delivering one package to a fleet over an AMI network (virtual time).

    By default the aggregated model (scales to millions of meters); ``--detailed`` runs the
    real meter agents behind the wire codec, one event per frame, for small fleets.
    """
    if strategy not in ("unicast", "multicast"):
        raise error("invalid-argument", "--strategy: unicast or multicast")
    if not 1 <= meters <= 5_000_000:
        raise error("invalid-argument", "--meters: 1 .. 5000000")
    if image_kib < 1 or image_kib > 65536:
        raise error("invalid-argument", "--image-kib: 1 .. 65536")
    cfg = FleetConfig(meters=meters, profile=profile(net), strategy=strategy,  # type: ignore[arg-type]
                      image_size=image_kib * 1024, delta=delta, loss=loss, upgrade_share=share,
                      offline=offline, lost=lost, seed=seed, gather=not direct_readback)
    if detailed:
        from amiup.headend.simworld import run_detailed

        result = run_detailed(cfg)
        if as_json:
            typer.echo(json.dumps(result.to_dict(), sort_keys=True))
        else:
            _summary(result, Console())
        return
    if as_json:
        result = simulate(cfg)
        typer.echo(json.dumps(result.to_dict(), sort_keys=True))
        return
    console = Console(stderr=True)
    with Progress(TextColumn("[bold]simulating[/] {task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total} cells"), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task(f"{meters} meters, {cfg.effective_strategy}", total=1)

        def tick(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        result = simulate(cfg, tick)
    _summary(result, Console())


def _summary(r: FleetResult, console: Console) -> None:
    d = r.to_dict()
    cfg = r.config
    t = Table(title=f"{d['meters']} meters on {d['profile']}, {d['strategy']}"
                    f"{' delta' if d['delta'] else ' full'}, loss {d['loss']:.0%}", show_header=False)
    t.add_column(style="bold")
    t.add_column()
    t.add_row("payload", f"{d['payload_bytes']:,} bytes in {cfg.profile.block_size}-byte blocks")
    t.add_row("confirmed", f"{d['confirmed']:,} of {d['meters']:,}")
    for key in ("t50_s", "t95_s", "t99_s", "t100_s"):
        t.add_row(f"time to {key[1:-2]}% confirmed", _fmt_s(d[key]))
    t.add_row("cells", f"{d['cells']:,}")
    t.add_row("airtime total", f"{d['airtime_bytes']:,} bytes x hops")
    t.add_row("airtime per cell",
              f"mean {d['airtime_bytes_per_cell_mean']:,}, max {d['airtime_bytes_per_cell_max']:,}")
    t.add_row("airtime / (payload x meters)", f"{d['airtime_per_payload_meter']:.3f}")
    t.add_row("floor (architecture.md)", _fmt_s(d["floor_s"]))
    for key, label in (("ratio_to_floor", "t100 / floor"), ("t99_ratio_to_floor", "t99 / floor"),
                       ("airtime_ratio_to_floor", "busiest cell's airtime / floor's")):
        ratio = d[key]
        t.add_row(label, f"{ratio:.2f}x" if ratio else "n/a")
    fails = ", ".join(f"{k}: {v}" for k, v in sorted(d["failed_by_code"].items())) or "none"
    t.add_row("failures by code", fails)
    t.add_row("wall time", f"{d['wall_s']:.2f} s")
    console.print(t)
