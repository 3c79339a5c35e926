"""`amiup demo`: a short real end-to-end run on the embedded defaults, narrated."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from amiup.errors import AmiupError
from amiup.package import build_package, verify_package, write_atomic
from amiup.trust import TrustAnchors, generate_key, key_id, save_private_key, save_public_key

console = Console()


def _firmware(seed: str, size: int) -> bytes:
    """Deterministic, firmware-like bytes (repeating structure, as real code has)."""
    block = hashlib.sha256(seed.encode()).digest() * 64
    out = bytearray()
    i = 0
    while len(out) < size:
        out += block[: 1024 + (i % 7) * 64] + i.to_bytes(4, "big")
        i += 1
    return bytes(out[:size])


def demo(
    meters: Annotated[int, typer.Option(help="Meters in the simulated fleet.")] = 20,
    out: Annotated[Path | None, typer.Option(help="Folder for keys and packages (default: temp).")] = None,
) -> None:
    """Keys -> signed full and delta packages -> verify -> tampered copy rejected."""
    work = out or Path(tempfile.mkdtemp(prefix="amiup-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    console.rule("[bold]amiup demo")
    console.print(f"working folder: {work}")

    vendor, utility, meter_key = generate_key(), generate_key(), generate_key()
    for name, k in (("vendor", vendor), ("utility", utility), ("meter", meter_key)):
        save_private_key(k, work / f"{name}.key")
        save_public_key(k.public_key(), work / f"{name}.pub")
        console.print(f"1. {name:7} key {key_id(k.public_key())[:16]}…  ({name}.key, mode 0600)")
    anchors = TrustAnchors.create(vendor=[vendor.public_key()], utility=[utility.public_key()])

    v1 = _firmware("ami_app 1.0.0", 256 * 1024)
    v2 = bytearray(v1)
    v2[40_000:40_200] = os.urandom(200)
    v2 += _firmware("ami_app 1.1.0 feature", 8 * 1024)
    new = bytes(v2)
    common = dict(component="ami_app", version="1.1.0", security_seq=2, vendor="acme",
                  model="AX-1", hw_revs=["B"], sign_keys=[vendor])
    full = build_package(new, **common)  # type: ignore[arg-type]
    dlt = build_package(new, delta_from=v1, encrypt_for=[meter_key.public_key()], **common)  # type: ignore[arg-type]
    write_atomic(work / "ami_app-1.1.0.amiup", full)
    write_atomic(work / "ami_app-1.1.0-delta.amiup", dlt)
    console.print(f"2. built full package  {len(full):>8} bytes (image {len(new)} bytes)")
    console.print(f"   built delta package {len(dlt):>8} bytes, encrypted for the meter "
                  f"({100 * len(dlt) / len(full):.1f}% of full)")

    r = verify_package(full, anchors)
    console.print(f"3. verify full:  [green]ok[/] signed by {r.signer_ids[0][:16]}…, image digest checked")
    r = verify_package(dlt, anchors, old_image=v1, decrypt_key=meter_key)
    console.print("   verify delta: [green]ok[/] decrypted, applied to v1.0.0, image digest checked")

    tampered = bytearray(full)
    tampered[len(full) // 2] ^= 0x01
    try:
        verify_package(bytes(tampered), anchors)
        console.print("[red]4. tampered copy was NOT rejected[/]")
        raise typer.Exit(1)
    except AmiupError as ex:
        console.print(f"4. one flipped bit in the payload: [red]rejected[/] error: {ex.message}")
    other = generate_key()
    forged = build_package(new, **{**common, "sign_keys": [other]})  # type: ignore[arg-type]
    try:
        verify_package(forged, anchors)
    except AmiupError as ex:
        console.print(f"   signed by an unknown key:       [red]rejected[/] error: {ex.message}")
    console.rule("[bold green]demo finished")
