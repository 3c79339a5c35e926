"""`amiup keys`: make signing keys for the vendor, utility, root, meter and field-tool roles."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from amiup.errors import error
from amiup.trust import ROLES, generate_key, key_id, save_private_key, save_public_key

app = typer.Typer(help="Create and inspect keys.", no_args_is_help=True)


@app.command("generate")
def generate(
    role: Annotated[str, typer.Option(help=f"Key role: {'|'.join(ROLES)}.")],
    out: Annotated[Path, typer.Option(help="Folder to write ROLE.key (0600) and ROLE.pub to.")],
    name: Annotated[str, typer.Option(help="File stem instead of the role name.")] = "",
    force: Annotated[bool, typer.Option(help="Overwrite existing key files.")] = False,
) -> None:
    """Generate an ECDSA P-256 key pair; prints the key id (SHA-256 of the public key)."""
    if role not in ROLES:
        raise error("invalid-argument", f"--role {role!r}: one of {'|'.join(ROLES)}")
    out.mkdir(parents=True, exist_ok=True)
    stem = name or role
    priv, pub = out / f"{stem}.key", out / f"{stem}.pub"
    if not force and (priv.exists() or pub.exists()):
        raise error("conflict", f"{priv} or {pub} exists (use --force to replace)")
    key = generate_key()
    save_private_key(key, priv)
    save_public_key(key.public_key(), pub)
    typer.echo(f"{role} key {key_id(key.public_key())}")
    typer.echo(f"  private: {priv} (mode 0600, keep it secret)")
    typer.echo(f"  public:  {pub}")
