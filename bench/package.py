"""Package benchmark: verify throughput vs plain hashlib, delta size, streaming memory.

Run: `.venv/bin/python bench/package.py` (or `make bench`). Prints figures and ratios
against baselines measured in the same run; asserts nothing.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from amiup.package import build_package, delta, verify_file, verify_package
from amiup.trust import TrustAnchors, generate_key

KIB, MIB = 1024, 1024 * 1024


def best_of(fn, n: int = 5) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def image(size: int, seed: int = 0) -> bytes:
    """Firmware-like: structured blocks with a few random bytes, not pure noise."""
    rnd = os.urandom(4096)
    out = bytearray()
    i = 0
    while len(out) < size:
        out += hashlib.sha256(bytes([seed]) + i.to_bytes(4, "big")).digest() * 30
        out += rnd[i % 4000:i % 4000 + 96]
        i += 1
    return bytes(out[:size])


def program(n_funcs: int, change: int) -> str:
    """A C program of many small functions; ``change`` edits one function's constants."""
    parts = ["#include <stdio.h>\n#include <string.h>\n"]
    for i in range(n_funcs):
        k = i * 7 + (13 if i == change else 0)
        parts.append(f"int f{i}(int x) {{ int a[8] = {{{k},{k+1},{k+2},{k+3},1,2,3,4}};"
                     f" for (int j = 0; j < 8; j++) x = x * {k % 17 + 3} + a[j] ^ (x >> 3);"
                     f" return x + (int)strlen(\"fn{i}\"); }}\n")
    parts.append("int main(void) { long s = 0;")
    parts += [f" s += f{i}({i});" for i in range(n_funcs)]
    parts.append(' printf("%ld\\n", s); return 0; }\n')
    return "".join(parts)


def real_build_pair(tmp: Path) -> tuple[bytes, bytes, str]:
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        import marshal

        import amiup.package.manifest as m
        src = Path(m.__file__).read_text()
        a = marshal.dumps(compile(src, "m.py", "exec"))
        b = marshal.dumps(compile(src.replace("max_text", "max_txt"), "m.py", "exec"))
        return a, b, "CPython bytecode of one module, a renamed identifier (no C compiler here)"
    out = []
    for n, change in enumerate((-1, 400)):
        (tmp / f"p{n}.c").write_text(program(1500, change))
        subprocess.run([cc, "-O2", "-o", str(tmp / f"p{n}"), str(tmp / f"p{n}.c")], check=True)
        out.append((tmp / f"p{n}").read_bytes())
    return out[0], out[1], "gcc -O2 build of a 1500-function C program, one function's constants changed"


def main() -> None:
    vendor = generate_key()
    anchors = TrustAnchors.create(vendor=[vendor.public_key()])
    common = dict(component="ami_app", version="1.0.0", security_seq=1, vendor="acme",
                  model="AX-1", hw_revs=["B"], sign_keys=[vendor])
    tmp = Path(tempfile.mkdtemp(prefix="amiup-bench-"))
    print("== verify throughput (full image, signature + manifest + SHA-256) vs hashlib.sha256")
    print(f"{'image':>8} {'hashlib MB/s':>13} {'verify MB/s':>12} {'verify(file) MB/s':>18} {'ratio':>6}")
    for size in (256 * KIB, 1 * MIB, 8 * MIB):
        img = image(size)
        pkg = build_package(img, **common)  # type: ignore[arg-type]
        path = tmp / f"p{size}.amiup"
        path.write_bytes(pkg)
        t_hash = best_of(lambda img=img: hashlib.sha256(img).digest())
        t_ver = best_of(lambda pkg=pkg: verify_package(pkg, anchors))
        t_file = best_of(lambda path=path: verify_file(path, anchors))
        print(f"{size // KIB:>6}Ki {size / t_hash / MIB:>13.0f} {size / t_ver / MIB:>12.0f} "
              f"{size / t_file / MIB:>18.0f} {t_hash / t_ver:>6.2f}x")
    print("   goal: verify >= 0.90x of hashlib on 8 MiB")

    print("\n== delta size on a realistic pair of builds")
    old, new, what = real_build_pair(tmp)
    full = build_package(new, **common)  # type: ignore[arg-type]
    dlt = build_package(new, delta_from=old, **common)  # type: ignore[arg-type]
    print(f"   {what}")
    print(f"   image {len(new)} bytes, full package {len(full)}, delta package {len(dlt)}: "
          f"{100 * len(dlt) / len(full):.1f}% of full (goal <= 15%)")

    print("\n== peak Python memory (tracemalloc) while the image grows")
    print(f"{'image':>8} {'verify file peak':>17} {'delta apply peak':>17}")
    for size in (256 * KIB, 1 * MIB, 2 * MIB, 4 * MIB, 8 * MIB):
        img = image(size, 1)
        newer = bytearray(img)
        for off in range(0, size, size // 16):
            newer[off:off + 64] = os.urandom(64)
        newer_b = bytes(newer)
        path = tmp / f"m{size}.amiup"
        path.write_bytes(build_package(img, **common))  # type: ignore[arg-type]
        patch = delta.create(img, newer_b)
        (tmp / "old.bin").write_bytes(img)
        (tmp / "patch.bin").write_bytes(patch)
        del newer
        tracemalloc.start()
        verify_file(path, anchors)
        peak_v = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        tracemalloc.start()
        with open(tmp / "old.bin", "rb") as fo, open(tmp / "patch.bin", "rb") as fp, \
                open(tmp / "new.bin", "wb") as fn:
            delta.apply_stream(fo, fp, fn)
        peak_d = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert (tmp / "new.bin").read_bytes() == newer_b
        print(f"{size // KIB:>6}Ki {peak_v / KIB:>15.0f}Ki {peak_d / KIB:>15.0f}Ki")
    print("   goal: flat (bounded by the read chunk / patch buffers), not growing with the image")
    shutil.rmtree(tmp, ignore_errors=True)
    _ = io


if __name__ == "__main__":
    main()
