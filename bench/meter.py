"""Meter upgrade cost: peak Python memory (tracemalloc) and time per block as images grow.

Run: ``.venv/bin/python bench/meter.py [--max-mib 8] [--block 1024]``. For each image size
(256 KiB doubling to the maximum) and payload kind (full, encrypted full, delta) one upgrade
runs on a directory-backed meter (flash on disk, so flash pages are not counted as RAM):
offer -> every block -> verify (decrypt / delta streamed into the staged slot) -> activate
-> commit. Printed: peak traced memory of that upgrade, its ratio to the 256 KiB baseline
(goal: flat, bounded by block and page size, not by image size), and mean time per block
on disk (one file create + rename each) and with flash in RAM (the meter's own logic).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from amiup.meter import DirStorage, MemoryStorage, make_image
from support_meter import Orders, header, keys, new_meter, package, payload

T = 1_800_000_000.0


def block_time_in_ram(pkg: bytes, size: int, block: int) -> float:
    """Mean ms per block with flash in RAM: the meter's own cost, without file I/O."""
    meter = new_meter(MemoryStorage(), now=T, image_size=size)
    acc = meter.offer(Orders().order(pkg, now=T), header(pkg), T + 1, block_size=block)
    data = payload(pkg)
    t0 = time.perf_counter()
    for i in range(acc.n_blocks):
        meter.block(acc.transfer_id, i, data[i * block:(i + 1) * block], T + 1)
    return 1000 * (time.perf_counter() - t0) / max(1, acc.n_blocks)


def one(size: int, kind: str, block: int, root: Path) -> tuple[float, float, float, int]:
    """(peak KiB, ms per block on disk, ms per block in RAM, payload bytes) of one upgrade."""
    base = make_image("ami_app", "1.0.0", size=size)
    pkg = package("ami_app", "2.0.0", 2, size=size, encrypt=kind == "encrypted",
                  delta_from=base if kind == "delta" else None)
    hdr = header(pkg)
    pay_file = root / f"{kind}-{size}.payload"
    pay_file.write_bytes(payload(pkg))
    order = Orders().order(pkg, now=T, activation="now")
    meter = new_meter(DirStorage(root / f"{kind}-{size}"), now=T, image_size=size)
    n_pay = pay_file.stat().st_size
    ram_ms = block_time_in_ram(pkg, size, block)
    del pkg, base
    tracemalloc.start()
    tracemalloc.reset_peak()
    acc = meter.offer(order, hdr, T + 1, block_size=block)
    spent = 0.0
    with open(pay_file, "rb") as fh:
        for i in range(acc.n_blocks):
            data = fh.read(block)
            t0 = time.perf_counter()
            meter.block(acc.transfer_id, i, data, T + 1)
            spent += time.perf_counter() - t0
    state = meter.verify("ami_app", T + 2)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    if state != "committed":
        raise SystemExit(f"upgrade ended {state}")
    return peak / 1024, 1000 * spent / max(1, acc.n_blocks), ram_ms, n_pay


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-mib", type=float, default=8.0)
    ap.add_argument("--block", type=int, default=1024)
    ap.add_argument("--delta-max-mib", type=float, default=2.0,
                    help="largest delta case (building big deltas is slow on the build side)")
    args = ap.parse_args()
    keys()
    sizes = []
    s = 256 * 1024
    while s <= args.max_mib * 1024 * 1024:
        sizes.append(s)
        s *= 2
    print(f"meter upgrade, block {args.block} B, flash on disk (DirStorage)")
    print(f"{'kind':<10} {'image':>9} {'payload':>9} {'peak KiB':>9} {'x base':>7} "
          f"{'ms/blk disk':>11} {'ms/blk RAM':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("full", "encrypted", "delta"):
            baseline = None
            for size in sizes:
                if kind == "delta" and size > args.delta_max_mib * 1024 * 1024:
                    break
                peak, ms, ram_ms, n_pay = one(size, kind, args.block, Path(tmp))
                baseline = baseline or peak
                print(f"{kind:<10} {size // 1024:>7}Ki {n_pay // 1024:>7}Ki {peak:>9.1f} "
                      f"{peak / baseline:>7.2f} {ms:>11.3f} {ram_ms:>10.3f}", flush=True)
    print(f"(python {sys.version.split()[0]}, {os.cpu_count()} cpus)")


if __name__ == "__main__":
    main()
