"""A real process killed with SIGKILL mid-upgrade is a power loss for the directory meter."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from amiup.meter import DirStorage, Meter
from amiup.meter.eventlog import verify_export
from reqmark import req
from support_meter import T0, Orders, header, new_meter, package, payload, send_blocks

CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from amiup.meter import DirStorage, Meter
    d = Path(sys.argv[1])
    meter = Meter(DirStorage(d / "flash"))
    now = float(sys.argv[2])
    meter.boot(now)
    acc = meter.offer((d / "order").read_bytes(), (d / "header").read_bytes(), now,
                      block_size=256)
    data = (d / "payload").read_bytes()
    print("started", flush=True)
    for i in range(acc.n_blocks):
        meter.block(acc.transfer_id, i, data[i * 256:(i + 1) * 256], now)
        if i == 127:
            print("stored 128", flush=True)
        time.sleep(0.002)
    print("done", flush=True)
    time.sleep(60)
""")


@req("SM-9", "SM-2")
def test_kill_9_during_transfer_then_resume(tmp_path: Path) -> None:
    flash = tmp_path / "flash"
    meter = new_meter(DirStorage(flash))
    nv = meter.nv_snapshot()
    pkg = package("ami_app", "2.0.0", 2, size=96 * 1024)
    order = Orders().order(pkg, now=T0 + 10)
    (tmp_path / "order").write_bytes(order)
    (tmp_path / "header").write_bytes(header(pkg))
    (tmp_path / "payload").write_bytes(payload(pkg))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path), str(T0 + 10)],
                             stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "started"
        assert child.stdout.readline().strip() == "stored 128"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    again = Meter(DirStorage(flash))
    again.boot(T0 + 20)
    assert again.nv_snapshot() == nv
    verify_export(again.export_log(), again.log.head)
    acc = again.offer(order, header(pkg), T0 + 20, block_size=256)
    have = acc.n_blocks - sum(bin(b).count("1") for b in acc.missing)
    assert 128 <= have < acc.n_blocks
    send_blocks(again, acc, payload(pkg), T0 + 20)
    assert again.verify("ami_app", T0 + 21) == "verified"
    assert again.activate("ami_app", None, T0 + 22) == "committed"
    print(f"\nkilled after {have} of {acc.n_blocks} blocks; resumed from there")
