"""Fleet delivery benchmark: simulator scale (wall time, peak RSS, growth exponent) and the
four delivery strategies side by side on rf-mesh and plc (airtime, t99, ratio to floor).

Run: ``.venv/bin/python bench/fleet.py`` (add ``--quick`` to stop at 100k meters). Prints
markdown tables; figures are ratios against in-run baselines, not pass/fail timings.
Goals (issue 4): 1M meters in < 60 s wall and < 4 GiB; multicast-delta within 1.5x of its
floor and >= 20x less airtime than unicast-full.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

from amiup.headend.fleetmodel import FleetConfig, simulate
from amiup.network.profiles import PROFILES

_CHILD = """
import json, resource, sys, time
from amiup.headend.fleetmodel import FleetConfig, simulate
from amiup.network.profiles import PROFILES
n, prof, strat = int(sys.argv[1]), sys.argv[2], sys.argv[3]
t = time.perf_counter()
r = simulate(FleetConfig(meters=n, profile=PROFILES[prof], strategy=strat))
wall = time.perf_counter() - t
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"wall": wall, "rss": rss, "confirmed": r.confirmed}))
"""


def scale(sizes: list[int], prof: str, strategy: str) -> None:
    """Wall time and peak RSS per fleet size, each in a fresh process."""
    print(f"\n### Scale: {prof}, {strategy}, full 1 MiB image, default loss\n")
    print("| meters | wall s | peak RSS MiB | confirmed |")
    print("|---:|---:|---:|---:|")
    walls = []
    for n in sizes:
        out = subprocess.run([sys.executable, "-c", _CHILD, str(n), prof, strategy],
                             check=True, capture_output=True, text=True, timeout=900)
        d = json.loads(out.stdout)
        walls.append(d["wall"])
        print(f"| {n:,} | {d['wall']:.2f} | {d['rss'] / 2**20:.0f} | {d['confirmed']:,} |")
    if len(sizes) > 1 and walls[0] > 0:
        k = math.log(walls[-1] / walls[0]) / math.log(sizes[-1] / sizes[0])
        print(f"\ngrowth exponent (wall ~ meters^k): k = {k:.2f}")


def strategies(n: int, prof: str, loss: float | None) -> None:
    """unicast-full, unicast-delta, multicast-full, multicast-delta on one profile.

    The floor is architecture.md's (loss-adjusted); three ratios to it: time to the last
    meter confirmed, to 99%, and the busiest cell's airtime against the floor's airtime.
    A last row runs multicast-delta with every meter answering the read-back directly
    instead of gathered up the mesh, to show what gathering buys.
    """
    p = PROFILES[prof]
    shown = p.default_loss if loss is None else loss
    print(f"\n### Strategies: {n:,} meters on {prof}, loss {shown:.0%}\n")
    print("| strategy | airtime bytes x hops | unicast-full / this | t99 | floor |"
          " t100 / floor | t99 / floor | airtime / floor |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    base = None
    runs = (("unicast", False, True), ("unicast", True, True), ("multicast", False, True),
            ("multicast", True, True), ("multicast", True, False))
    for strategy, delta, gather in runs:
        r = simulate(FleetConfig(meters=n, profile=p, strategy=strategy, delta=delta, loss=loss,  # type: ignore[arg-type]
                                 gather=gather))
        d = r.to_dict()
        base = base or d["airtime_bytes"]
        name = f"{strategy}-{'delta' if delta else 'full'}" + ("" if gather else ", direct read-back")
        print(f"| {name} | {d['airtime_bytes']:.3e} | {base / d['airtime_bytes']:.1f}x |"
              f" {d['t99_s'] / 3600:.3f} h | {d['floor_s'] / 3600:.3f} h | {d['ratio_to_floor']:.2f} |"
              f" {d['t99_ratio_to_floor']:.2f} | {d['airtime_ratio_to_floor']:.2f} |")


def main() -> None:
    quick = "--quick" in sys.argv
    sizes = [10_000, 100_000] if quick else [10_000, 100_000, 1_000_000]
    for prof in ("rf-mesh", "plc"):
        scale(sizes, prof, "multicast")
    scale(sizes, "rf-mesh", "unicast")
    n = 10_000 if quick else 100_000
    for prof in ("rf-mesh", "plc"):
        strategies(n, prof, None)
        strategies(n, prof, 0.0)


if __name__ == "__main__":
    main()
