"""`amiup package`: build, inspect and verify signed upgrade packages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from amiup.cli.common import read_file
from amiup.package import (
    LegalInfo,
    Manifest,
    build_package,
    decode_package,
    verify_file,
    write_atomic,
)
from amiup.trust import TrustAnchors, load_private_key, load_public_key

app = typer.Typer(help="Build, inspect and verify .amiup packages.", no_args_is_help=True)




@app.command("build")
def build(
    image: Annotated[Path, typer.Option(help="The new firmware image file.")],
    component: Annotated[str, typer.Option(help="metrology|ami_app|ami_comm|han_app|han_comm")],
    version: Annotated[str, typer.Option(help="Semantic version, e.g. 2.1.0.")],
    security_seq: Annotated[int, typer.Option(help="Anti-rollback sequence (monotonic).")],
    vendor: Annotated[str, typer.Option(help="Manufacturer id.")],
    model: Annotated[str, typer.Option(help="Meter model.")],
    hw_rev: Annotated[list[str], typer.Option(help="Compatible hardware revision (repeat).")],
    sign_key: Annotated[list[Path], typer.Option(help="Vendor private key PEM (repeat).")],
    out: Annotated[Path, typer.Option(help="Package file to write.")],
    requires: Annotated[list[str] | None, typer.Option(help="Dependency, e.g. ami_app>=2.0.0.")] = None,
    delta_from: Annotated[Path | None, typer.Option(help="Old image: build a delta.")] = None,
    encrypt_for: Annotated[list[Path] | None, typer.Option(help="Recipient public key (repeat).")] = None,
    legal_ref: Annotated[str | None, typer.Option(help="Metrology type-approval reference.")] = None,
    legal_version: Annotated[
        str | None, typer.Option(help="Legally relevant version (default: --version).")] = None,
    protocol: Annotated[
        str | None, typer.Option(help="Protocol a comm image brings, e.g. zigbee-se-1.4.")] = None,
    notes: Annotated[str, typer.Option(help="Release notes.")] = "",
) -> None:
    """Build and sign a package; nothing is written unless every check passes."""
    data = read_file(image, "image")
    old = read_file(delta_from, "old image") if delta_from else None
    keys = [load_private_key(k) for k in sign_key]
    recipients = [load_public_key(k) for k in encrypt_for or []]
    legal = LegalInfo(legal_ref, legal_version or version) if legal_ref else None
    pkg = build_package(data, component=component, version=version, security_seq=security_seq,
                        vendor=vendor, model=model, hw_revs=hw_rev, sign_keys=keys,
                        requires=requires or [], delta_from=old, encrypt_for=recipients,
                        legal=legal, protocol=protocol, notes=notes)
    write_atomic(out, pkg)
    m = decode_package(pkg).manifest
    typer.echo(f"built {out}: {m.component} {m.version} ({m.payload.kind}, "
               f"{m.payload.size} bytes payload for a {m.image.size}-byte image)")


def _manifest_json(m: Manifest, digest: bytes, signers: list[str]) -> dict[str, Any]:
    def conv(x: Any) -> Any:
        if isinstance(x, bytes):
            return x.hex()
        if isinstance(x, dict):
            return {k: conv(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [conv(v) for v in x]
        return x
    return {"digest": digest.hex(), "signers": signers, "manifest": conv(m.to_dict())}


@app.command("inspect")
def inspect(
    package: Annotated[Path, typer.Argument(help="Package file.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show what a package claims (not verified: use `verify` for that)."""
    from amiup.package.manifest import manifest_digest

    pkg = decode_package(read_file(package, "package"))
    m = pkg.manifest
    signers = [s.kid for s in pkg.signatures]
    if json_out:
        typer.echo(json.dumps(_manifest_json(m, manifest_digest(pkg.manifest_bytes), signers), indent=2))
        return
    t = Table(title=f"{package.name} (unverified)", show_header=False)
    rows: list[tuple[str, str]] = [
        ("component", m.component), ("version", m.version), ("security_seq", str(m.security_seq)),
        ("vendor / model", f"{m.vendor} / {m.model}"), ("hw revisions", ", ".join(m.hw_revs)),
        ("image", f"{m.image.size} bytes, sha256 {m.image.sha256.hex()}"),
        ("payload", f"{m.payload.kind}, {m.payload.size} bytes, {m.payload.compression}"),
        ("requires", ", ".join(map(str, m.requires)) or "-"),
        ("encryption", f"{m.encryption.alg} for {len(m.encryption.recipients)} recipient(s)"
         if m.encryption else "none"),
        ("protocol", m.protocol or "-"),
        ("legal", f"{m.legal.approval_ref} v{m.legal.legal_version}" if m.legal else "-"),
        ("manifest digest", manifest_digest(pkg.manifest_bytes).hex()),
        ("signed by", ", ".join(s[:16] + "…" for s in signers)),
        ("notes", m.notes or "-"),
    ]
    for k, v in rows:
        t.add_row(k, v)
    Console().print(t)


@app.command("verify")
def verify(
    package: Annotated[Path, typer.Argument(help="Package file.")],
    vendor_key: Annotated[list[Path], typer.Option(help="Trusted vendor public key (repeat).")],
    old_image: Annotated[Path | None, typer.Option(help="Running image, to check and apply a delta.")] = None,
    decrypt_key: Annotated[Path | None, typer.Option(help="Recipient private key to decrypt.")] = None,
    revoked: Annotated[list[str] | None, typer.Option(help="Revoked key id (repeat).")] = None,
) -> None:
    """Verify signature, fields and digests; exit 0, or 1 with `error: CODE: why`."""
    anchors = TrustAnchors.create(vendor=[load_public_key(k) for k in vendor_key],
                                 revoked=revoked or [])
    old = read_file(old_image, "old image") if old_image else None
    dkey = load_private_key(decrypt_key) if decrypt_key else None
    res = verify_file(package, anchors, old_image=old, decrypt_key=dkey)
    m = res.manifest
    checked = "image digest checked" if res.image_checked else "payload digest checked"
    typer.echo(f"ok: {m.component} {m.version} for {m.vendor}/{m.model}, signed by "
               f"{', '.join(k[:16] + '…' for k in res.signer_ids)}; {checked}")
