"""`amiup fieldtool`: the local-port tool: issue a field-tool credential, upgrade a meter locally.

The credential file holds the utility-signed credential and the tool's own private key (mode
0600): whoever holds it can log in at the meters it names until it expires, so treat it like
a key. The upgrade runs the meter's normal offer/blocks/verify/activate path (G-1, SEC-8).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

import cbor2
import typer
from cryptography.hazmat.primitives import serialization

from amiup.cli.common import parse_activation, read_file
from amiup.cli.meter import open_meter
from amiup.errors import error
from amiup.fsutil import atomic_write
from amiup.meter.localport import ROLES, LocalPort, issue_credential, sign_challenge
from amiup.package import decode_package
from amiup.trust import PrivateKey, generate_key, key_id, load_private_key

app = typer.Typer(help="Local (optical port) field tool.", no_args_is_help=True)




@app.command("credential")
def credential(
    utility_key: Annotated[Path, typer.Option(help="Utility private key PEM (signs it).")],
    tool_id: Annotated[str, typer.Option(help="Name of the tool or technician.")],
    out: Annotated[Path, typer.Option(help="Credential file to write (mode 0600).")],
    meter: Annotated[list[str] | None, typer.Option(
        help="Meter serial it may open (repeat; * = all).")] = None,
    group: Annotated[list[str] | None, typer.Option(
        help="Meter group it may open (repeat).")] = None,
    role: Annotated[str, typer.Option(help=f"{'|'.join(ROLES)}.")] = "installer",
    valid_hours: Annotated[float, typer.Option(help="Validity from now.")] = 8.0,
) -> None:
    """Issue a utility-signed field-tool credential with a fresh tool key."""
    ukey = load_private_key(utility_key)
    tool_key = generate_key()
    now = int(time.time())
    cred = issue_credential(ukey, tool_key.public_key(), tool_id=tool_id, role=role,
                            not_before=now - 60, not_after=now + int(valid_hours * 3600),
                            meters=tuple(meter or ()), groups=tuple(group or ()))
    pem = tool_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    atomic_write(out, cbor2.dumps({"credential": cred, "tool_key": pem}), 0o600)  # holds a key
    typer.echo(f"credential for {tool_id} ({role}), tool key {key_id(tool_key.public_key())[:16]}…,"
               f" valid {valid_hours:g} h -> {out}")


def _load_credential(path: Path) -> tuple[bytes, PrivateKey]:
    try:
        d = cbor2.loads(read_file(path, "credential"))
        key = serialization.load_pem_private_key(d["tool_key"], None)
        return bytes(d["credential"]), key  # type: ignore[return-value]
    except (KeyError, TypeError, ValueError, cbor2.CBORDecodeError) as ex:
        raise error("invalid-argument", f"{path} is not a credential file ({ex})") from None




@app.command("upgrade")
def upgrade(
    data_dir: Annotated[Path, typer.Option(help="The meter's folder (its local port).")],
    package: Annotated[Path, typer.Option(help="Signed .amiup package.")],
    credential: Annotated[Path, typer.Option(help="Field-tool credential file.")],
    activate: Annotated[str, typer.Option(help="now | on-command | at:ISO-TIME.")] = "now",
) -> None:
    """Log in at the local port, transfer, verify and activate a package on one meter."""
    act = parse_activation(activate)
    cred, tool_key = _load_credential(credential)
    pkg = decode_package(read_file(package, "package"))
    meter = open_meter(data_dir)
    port = LocalPort(meter)
    now = time.time()
    challenge = port.challenge(now)
    session = port.login(cred, sign_challenge(tool_key, challenge, meter.meter_id), now)
    acc = session.offer(pkg.signed_header, now, activation=act)
    bs = acc.block_size
    for i in range(acc.n_blocks):
        if acc.missing[i // 8] >> (i % 8) & 1:
            session.block(acc.transfer_id, i, pkg.payload[i * bs:(i + 1) * bs], time.time())
    state = session.verify(acc.component, time.time())
    s = session.status(os.urandom(8), time.time()).components[acc.component]
    typer.echo(f"{meter.meter_id} {acc.component}: {state}; running {s.running_version}"
               + (f", staged {s.staged_version}" if s.staged_version else "")
               + (f" ({s.code})" if s.code else ""))
    if state == "reverted":
        raise error(s.code or "self-test-failed",
                    f"{acc.component} reverted to {s.running_version}")
