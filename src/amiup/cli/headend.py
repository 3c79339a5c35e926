"""`amiup headend push|status|run` (upgrade or read real meters over CoAP; `run` takes work
from a UMS) and the `amiup meter serve` command (a meter process on CoAP/UDP), thin shells
over ``amiup.network.coap`` and the head-end session."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import aiocoap
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

from amiup.cli.common import parse_activation
from amiup.errors import error
from amiup.headend.session import Delivery, SessionConfig, UnicastSession
from amiup.meter import verify_report
from amiup.network import coap
from amiup.package import decode_package, manifest_digest
from amiup.trust import load_private_key, load_public_key
from amiup.wire import GetStatus, Status

if TYPE_CHECKING:  # the UMS is imported only by `headend run` (keeps `meter serve` light)
    from amiup.ums.scheduler import Job, Report

app = typer.Typer(help="The AMI head-end: deliver packages to meters, read their status.",
                  no_args_is_help=True)




@app.command("push")
def push(
    meter: Annotated[str, typer.Option(help="The meter, coap://127.0.0.1:PORT")],
    package: Annotated[Path, typer.Option(help="Signed .amiup package.")],
    utility_key: Annotated[Path, typer.Option(help="Utility private key that signs the order.")],
    activate: Annotated[str, typer.Option(help="now | at:ISO-TIME | on-command")] = "now",
    block_size: Annotated[int, typer.Option(help="Block size to propose (64..4096).")] = 512,
    rate: Annotated[float, typer.Option(help="Blocks per second (0: as fast as it answers).")] = 0.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Upgrade one meter; pushing again after an interruption resumes from its missing blocks."""
    if not package.is_file():
        raise error("not-found", f"no package {package}")
    if not 64 <= block_size <= 4096:
        raise error("invalid-argument", "--block-size: 64..4096")
    data = package.read_bytes()
    key = load_private_key(utility_key)
    act = parse_activation(activate)
    console = Console(stderr=True)
    with Progress(TextColumn("[bold]push[/] {task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total} blocks"), console=console,
                  transient=True, disable=as_json) as bar:
        task = bar.add_task(meter, total=None)

        def tick(held: int, total: int) -> None:
            bar.update(task, completed=held, total=total)

        result = asyncio.run(coap.push(meter, data, key, activate=act, block_size=block_size,
                                       rate=rate, progress=tick))
    if as_json:
        typer.echo(json.dumps(asdict(result), sort_keys=True))
    else:
        resumed = (f", resumed with {result.missing_at_start} of {result.block_count} missing"
                   if 0 <= result.missing_at_start < result.block_count else "")
        typer.echo(f"meter {result.meter_id}: {result.outcome}, running {result.running}; "
                   f"{result.blocks_sent} blocks sent{resumed}")
    if result.outcome == "failed":
        raise error(result.code or "timeout", f"meter {result.meter_id}")


@app.command("status")
def status(
    meter: Annotated[str, typer.Option(help="The meter, coap://127.0.0.1:PORT")],
    meter_key: Annotated[Path | None, typer.Option(
        help="The meter's public key: check its signed, nonce-bound report.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Read a meter's component versions and upgrade states over the network (SM-1)."""
    st = asyncio.run(coap.read_status(meter, full=True))
    signed = "not checked"
    if meter_key is not None:
        report = verify_report(st.report, load_public_key(meter_key), st.nonce)
        if report.meter_id != st.meter_id:
            raise error("bad-signature", "the signed report names another meter")
        signed = "verified"
    if as_json:
        typer.echo(json.dumps({
            "meter_id": st.meter_id, "time": st.time, "order_counter": st.order_counter,
            "signed_report": signed,
            "components": {c.component: {
                "running": c.running, "staged": c.staged, "state": c.state, "code": c.code,
                "received": c.received, "blocks": c.block_count, "security_seq": c.security_seq,
            } for c in st.components},
        }, indent=2, sort_keys=True))
        return
    typer.echo(f"meter {st.meter_id} (signed report: {signed})")
    for c in st.components:
        extra = f" {c.received}/{c.block_count} blocks" if c.block_count else ""
        code = f" ({c.code})" if c.code else ""
        typer.echo(f"  {c.component:<10} {c.running:<9} staged {c.staged or '-':<9} {c.state}{code}{extra}")


def serve(
    data_dir: Annotated[Path, typer.Option(help="The meter's folder (made by `amiup meter init`).")],
    port: Annotated[int, typer.Option(help="UDP port on 127.0.0.1.")] = 5683,
) -> None:
    """Run the meter as a process answering CoAP on loopback (kill -9 = power loss)."""
    if not 1 <= port <= 65535:
        raise error("invalid-argument", "--port: 1..65535")

    def ready(url: str) -> None:
        typer.echo(f"meter serving on {url}", err=True)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(coap.run_server(data_dir, port, ready=ready))


class CoapHeadEnd:
    """The UMS worker's ``HeadEnd`` interface (submit / poll) over CoAP to meter processes.

    What ``amiup headend run`` drives: each deliver job is one ``UnicastSession`` with the
    UMS-signed order (the meter's read-back first: a version already running is reported,
    never installed again); each finish job activates the staged image and reads it back.
    """

    def __init__(self, meters: dict[str, str], packages: dict[str, bytes], *,
                 block_size: int = 512, rate: float = 0.0) -> None:
        self.meters, self.packages = meters, packages
        self.block_size, self.rate = block_size, rate
        self._queue: list[Job] = []

    def submit(self, jobs: Sequence[Job], now: float) -> None:
        self._queue.extend(jobs)

    def poll(self, now: float) -> list[Report]:
        queue, self._queue = self._queue, []
        if not queue:
            return []
        return asyncio.run(self._run_all(queue))

    async def _run_all(self, jobs: list[Job]) -> list[Report]:
        ctx = await aiocoap.Context.create_client_context()
        try:
            done = await asyncio.gather(*(self._run(ctx, j) for j in jobs))
        finally:
            await ctx.shutdown()
        return [r for reports in done for r in reports]

    async def _run(self, ctx: aiocoap.Context, job: Job) -> list[Report]:
        from amiup.ums.scheduler import Report

        aid, att = job.assignment_id, job.attempt
        url = self.meters.get(job.meter)
        if url is None:
            return [Report(aid, att, "failed", code="unreachable")]
        link = coap.CoapLink(ctx, url)
        st = await link.ask(GetStatus(os.urandom(16), job.component))
        comp = st.component(job.component) if isinstance(st, Status) else None
        if not isinstance(st, Status):
            return [Report(aid, att, "failed", code="unreachable")]
        if comp is None:
            return [Report(aid, att, "failed", code="wrong-component")]
        if comp.running == job.target_version and comp.state in ("committed", "idle"):
            return [Report(aid, att, "running", version=comp.running)]
        cfg = SessionConfig(window=16, timeout_s=coap.REQUEST_TIMEOUT_S, max_retries=3,
                            backoff=1.5, poll_s=1.0, max_polls=60, wait_for_activation=False)
        if job.kind == "finish":
            d = Delivery(b"-", b"-", b"", job.component, job.target_version, self.block_size, "now")
            s = UnicastSession(job.meter, d, cfg)
            await coap.drive(link, s, at="readback")
            return [Report(aid, att, "progress", state="activated"), *self._final(job, s, comp.running)]
        data = self.packages.get(job.package_digest)
        if data is None or job.order is None:
            return [Report(aid, att, "failed", code="not-found" if data is None else "not-authorized")]
        pkg = decode_package(data)
        d = Delivery(job.order, pkg.signed_header, pkg.payload, job.component, job.target_version,
                     self.block_size, None)
        s = UnicastSession(job.meter, d, cfg)
        await coap.drive(link, s, rate=self.rate)
        out = [Report(aid, att, "progress", state="transferring")]
        if s.phase == "done":
            out += [Report(aid, att, "progress", state="transferred"),
                    Report(aid, att, "progress", state="verified")]
            if s.code == "verified":
                return [*out, Report(aid, att, "released")]
            if s.code == "scheduled":
                return [*out, Report(aid, att, "progress", state="scheduled"),
                        Report(aid, att, "released")]
            out.append(Report(aid, att, "progress", state="activated"))
        return out + self._final(job, s, comp.running)

    @staticmethod
    def _final(job: Job, s: UnicastSession, before: str) -> list[Report]:
        from amiup.ums.scheduler import Report

        aid, att = job.assignment_id, job.attempt
        if s.phase == "done" and s.confirmed_at is not None:
            return [Report(aid, att, "running", version=job.target_version)]
        if s.code in ("self-test-failed", "boot-failed", "no-contact"):  # reverted by itself
            return [Report(aid, att, "running", version=before, code=s.code)]
        return [Report(aid, att, "failed", code=s.code or "timeout")]


def _load_packages(folder: Path) -> dict[str, bytes]:
    """Signed packages in ``folder`` by manifest digest (what jobs name)."""
    if not folder.is_dir():
        raise error("not-found", f"no package folder {folder}")
    out = {}
    for path in sorted(folder.glob("*.amiup")):
        data = path.read_bytes()
        out[manifest_digest(decode_package(data).manifest_bytes).hex()] = data
    return out


@app.command("run")
def run(
    ums: Annotated[str, typer.Option(help="UMS base URL, e.g. http://127.0.0.1:8000/api/v1")],
    packages: Annotated[Path, typer.Option(help="Folder of the campaigns' .amiup packages.")],
    meter: Annotated[list[str], typer.Option(help="SERIAL=coap://127.0.0.1:PORT (repeat).")],
    token: Annotated[str, typer.Option(envvar="AMIUP_TOKEN", help="Bearer token (headend.work).")],
    batch: Annotated[int, typer.Option(help="Jobs to claim per round.")] = 50,
    max_rounds: Annotated[int | None, typer.Option(help="Stop after N rounds (default: run on).")] = None,
) -> None:
    """Pull work from a UMS and deliver it to real meter processes over CoAP."""
    meters: dict[str, str] = {}
    for item in meter:
        serial, sep, url = item.partition("=")
        if not sep or not serial:
            raise error("invalid-argument", f"--meter {item!r}: SERIAL=coap://127.0.0.1:PORT")
        coap.parse_url(url)
        meters[serial] = url
    headend = CoapHeadEnd(meters, _load_packages(packages))
    from amiup.ums.headend_api import HeadEndClient, run_remote_headend

    client = HeadEndClient(ums, token)
    try:
        rounds = run_remote_headend(client, headend, batch=batch, max_rounds=max_rounds)
    finally:
        client.close()
    typer.echo(f"head-end stopped after {rounds} rounds")
