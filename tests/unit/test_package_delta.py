"""Delta images: round trip on real compiled code, base checks, streaming apply."""

from __future__ import annotations

import hashlib
import io
import marshal
import shutil
import subprocess
from pathlib import Path

import pytest

from amiup.errors import AmiupError
from amiup.package import decode_package, delta, verify_package
from reqmark import req
from support_package import Keys

C_SOURCE = """
#include <stdio.h>
static int table[64] = {%s};
int checksum(const char *s) { int h = %d; while (*s) h = h * 31 + *s++; return h; }
int main(int argc, char **argv) {
  int acc = 0;
  for (int i = 0; i < 64; i++) acc += table[i] * (argc + i);
  printf("%%d %%d\\n", acc, checksum(argc > 1 ? argv[1] : "meter"));
  return 0;
}
"""


def real_builds(tmp: Path) -> tuple[bytes, bytes]:
    """Two builds of a real program with a small source change (gcc, else CPython bytecode)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc:
        outs = []
        for n, seed in enumerate((7, 11)):
            src = tmp / f"fw{n}.c"
            src.write_text(C_SOURCE % (", ".join(str(i * 3) for i in range(64)), seed))
            subprocess.run([cc, "-O2", "-o", str(tmp / f"fw{n}"), str(src)], check=True)
            outs.append((tmp / f"fw{n}").read_bytes())
        return outs[0], outs[1]
    import amiup.package.verify as mod

    source = Path(mod.__file__).read_text()
    old = marshal.dumps(compile(source, "verify.py", "exec"))
    new = marshal.dumps(compile(source.replace("READ_CHUNK = 64", "READ_CHUNK = 32"), "verify.py", "exec"))
    return old, new


@req("AMI-4")
def test_delta_round_trip_on_real_binaries(tmp_path: Path) -> None:
    keys = Keys()
    old, new = real_builds(tmp_path)
    assert old != new
    pkg = keys.package(new, delta_from=old)
    m = decode_package(pkg).manifest
    assert m.payload.kind == "delta" and m.payload.from_sha256 == hashlib.sha256(old).digest()
    assert m.payload.size < len(new) / 2, (m.payload.size, len(new))
    res = verify_package(pkg, keys.anchors(), old_image=old, keep_image=True)
    assert res.image == new and res.image_checked


@req("AMI-4")
def test_delta_against_wrong_base_refused(tmp_path: Path) -> None:
    keys = Keys()
    old, new = real_builds(tmp_path)
    pkg = keys.package(new, delta_from=old)
    with pytest.raises(AmiupError) as ex:
        verify_package(pkg, keys.anchors(), old_image=old + b"\0")
    assert ex.value.code == "delta-base-mismatch"


@req("AMI-4", "SEC-7")
def test_encrypted_delta_round_trip(tmp_path: Path) -> None:
    keys = Keys()
    old, new = real_builds(tmp_path)
    pkg = keys.package(new, delta_from=old, encrypt_for=[keys.meter.public_key()])
    res = verify_package(pkg, keys.anchors(), old_image=old, decrypt_key=keys.meter, keep_image=True)
    assert res.image == new


def test_delta_stream_apply_writes_sequentially() -> None:
    old = bytes(range(256)) * 400
    new = old[:50_000] + b"patched!" + old[50_008:]
    patch = delta.create(old, new)

    class WriteOnly:
        def __init__(self) -> None:
            self.parts: list[bytes] = []

        def write(self, b: bytes) -> int:
            self.parts.append(bytes(b))
            return len(b)

    out = WriteOnly()
    n = delta.apply_stream(io.BytesIO(old), io.BytesIO(patch), out)  # type: ignore[arg-type]
    assert n == len(new) and b"".join(out.parts) == new
