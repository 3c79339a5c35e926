"""Storage: explicit writes, injected power loss, torn writes, double-buffered records."""

from __future__ import annotations

import pytest

from amiup.errors import AmiupError
from amiup.meter.storage import DirStorage, MemoryStorage, PowerLoss, Records, seal, unseal
from reqmark import req


@req("SM-9")
def test_power_loss_strikes_before_the_nth_write_and_nothing_is_written() -> None:
    s = MemoryStorage()
    s.arm_power_loss(2)
    s.write("a", b"1")
    s.write("b", b"2")
    with pytest.raises(PowerLoss):
        s.write("c", b"3")
    assert s.read("c") is None and s.read("a") == b"1"
    s.write("c", b"3")  # disarmed after striking
    assert s.writes == 4


@req("SM-9")
@pytest.mark.parametrize("torn", [False, True])
def test_record_survives_power_loss_during_its_update(torn: bool) -> None:
    s = MemoryStorage()
    r = Records(s)
    r.save("cal", {"gain": 1.0})
    r.save("cal", {"gain": 2.0})
    s.arm_power_loss(0, torn=torn)
    with pytest.raises(PowerLoss):
        r.save("cal", {"gain": 3.0})
    assert Records(s).load("cal") == {"gain": 2.0}  # old value, never a mix
    r2 = Records(s)
    r2.save("cal", {"gain": 4.0})
    assert Records(s).load("cal") == {"gain": 4.0}


@req("SM-9")
def test_corrupt_copy_is_ignored_and_newest_intact_copy_wins() -> None:
    s = MemoryStorage()
    r = Records(s)
    for v in range(5):
        r.save("x", v)
    newest = max(("rec/x/0", "rec/x/1"), key=lambda k: unseal(s.read(k))[0])  # type: ignore[index]
    page = bytearray(s.read(newest) or b"")
    page[-6] ^= 0xFF
    s._put(newest, bytes(page))
    assert Records(s).load("x") == 3
    assert unseal(seal(7, b"abc")) == (7, b"abc")
    assert unseal(b"short") is None


@req("SM-9")
def test_dir_storage_persists_across_instances(tmp_path) -> None:  # type: ignore[no-untyped-def]
    a = DirStorage(tmp_path / "m")
    Records(a).save("meter", {"serial": "S"})
    a.write("slot/ami_app/0/000000", b"page")
    b = DirStorage(tmp_path / "m")
    assert Records(b).load("meter") == {"serial": "S"}
    assert b.keys("slot/ami_app/") == ["slot/ami_app/0/000000"]
    b.erase("slot/ami_app/")
    assert b.keys("slot/") == []
    with pytest.raises(AmiupError):
        b.write("../escape", b"x")
