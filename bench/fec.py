"""Erasure-coded repair benchmark: RLNC encode throughput and decode time vs in-run baselines.

Run: ``.venv/bin/python bench/fec.py [--blocks 1024] [--block-size 1024] [--symbols 64]``.
Prints encode throughput (image MiB combined per second, one coded symbol = one pass over
the image) against plain numpy XOR-reduction and hashlib.sha256 over the same image, then
for m = 10, 50, 200 missing blocks the meter-side time to take m symbols (add) and to solve,
against sha256 of the image (the meter hashes the image anyway before verify). Asserts
nothing; best of 3 repeats.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from amiup.wire.fec import Decoder, Encoder

MIB = 1024 * 1024


def best_of(fn: Callable[[], object], n: int = 3) -> float:
    """Best wall time of ``n`` runs, seconds."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--blocks", type=int, default=1024)
    ap.add_argument("--block-size", type=int, default=1024)
    ap.add_argument("--symbols", type=int, default=64, help="symbols per encode timing")
    args = ap.parse_args()
    k, bs = args.blocks, args.block_size
    rng = random.Random(2026)
    image = rng.randbytes(k * bs - bs // 3)
    blocks = [image[i:i + bs] for i in range(0, len(image), bs)]
    size_mib = k * bs / MIB
    enc = Encoder(42, blocks, bs)
    words = np.frombuffer(image + bytes(k * bs - len(image)), dtype=np.uint64).reshape(k, -1)

    t_sym = best_of(lambda: [enc.symbol(s) for s in range(args.symbols)]) / args.symbols
    t_xor = best_of(lambda: [np.bitwise_xor.reduce(words, axis=0) for _ in range(args.symbols)])
    t_xor /= args.symbols
    t_sha = best_of(lambda: hashlib.sha256(image).digest())
    print(f"image: K={k} blocks x {bs} B = {size_mib:.2f} MiB")
    print(f"{'encode (one coded symbol)':34} {1000 * t_sym:8.2f} ms  {size_mib / t_sym:8.0f} MiB/s")
    print(f"{'baseline numpy XOR-reduce':34} {1000 * t_xor:8.2f} ms  {size_mib / t_xor:8.0f} MiB/s"
          f"   RLNC/XOR time ratio {t_sym / t_xor:5.1f}x")
    print(f"{'baseline sha256 of image':34} {1000 * t_sha:8.2f} ms  {size_mib / t_sha:8.0f} MiB/s"
          f"   RLNC/sha256 time ratio {t_sym / t_sha:5.1f}x")
    print()
    print(f"{'missing m':>9} {'symbols':>8} {'encode m ms':>11} {'add ms':>8} {'solve ms':>9} "
          f"{'solve/sha256':>13} {'RAM held KiB':>13}")
    for m in (10, 50, 200):
        if m > k:
            continue
        missing = rng.sample(range(k), m)
        t0 = time.perf_counter()
        symbols = [enc.symbol(s) for s in range(m + 8)]
        t_enc = (time.perf_counter() - t0) * m / (m + 8)
        adds: list[float] = []
        solves: list[float] = []
        used = 0
        for _ in range(3):
            dec = Decoder(42, k, bs, missing, max_pending=max(64, m))
            t0 = time.perf_counter()
            seq = 0
            while not dec.ready():
                dec.add(seq, symbols[seq])
                seq += 1
            t1 = time.perf_counter()
            out = dec.solve(lambda j: blocks[j])
            t2 = time.perf_counter()
            assert all(block[:len(blocks[i])] == blocks[i] for i, block in out)
            adds.append(t1 - t0)
            solves.append(t2 - t1)
            used = seq
        print(f"{m:9d} {used:8d} {1000 * t_enc:11.1f} {1000 * min(adds):8.1f} {1000 * min(solves):9.1f} "
              f"{min(solves) / t_sha:12.1f}x {m * (bs + m) / 1024:13.0f}")


if __name__ == "__main__":
    main()
