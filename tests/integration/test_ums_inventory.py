"""Inventory on both stores: filters compiled to SQL, groups, signed status reports, field upgrades."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from amiup.errors import AmiupError
from amiup.meter.report import ComponentStatus, LocalUpgrade, StatusReport
from amiup.trust import generate_key, public_bytes
from amiup.trust.keys import PrivateKey
from amiup.ums import audit, inventory
from amiup.ums.models import Meter, MeterEvent
from amiup.ums.store import Store
from reqmark import req
from support_ums import NOW, store_fixture  # noqa: F401

FLEET = [
    # serial, model, region, cell, ami_comm, metrology
    ("M1", "X", "north", "c1", "1.9.9", "1.0.0"),
    ("M2", "X", "north", "c1", "2.0.0-rc.1", "1.0.0"),
    ("M3", "X", "north", "c2", "2.0.0", "1.0.0"),
    ("M4", "Y", "north", "c2", "1.10.0", "1.1.0"),
    ("M5", "X", "south", "c3", "1.2.0", "1.0.0"),
    ("M6", "Y", "south", "c3", "10.0.0", "2.0.0"),
]


def _fleet(store: Store) -> None:
    with store.session() as db:
        for serial, model, region, cell, comm, metro in FLEET:
            inventory.upsert_meter(db, serial=serial, model=model, region=region, cell=cell,
                                   components={"ami_comm": comm, "metrology": metro},
                                   now=NOW, actor="test")


def _match(store: Store, expr: str) -> list[str]:
    with store.session() as db:
        _, rows = inventory.query(db, filter_expr=expr)
    return [r["serial"] for r in rows]


@req("UMS-1", "UMS-3", "UMS-12")
@pytest.mark.parametrize(("expr", "want"), [
    ("model=X and ami_comm.version<2.0 and region=north", ["M1", "M2"]),
    ("ami_comm.version>=2.0.0", ["M3", "M6"]),
    ("ami_comm.version<1.11", ["M1", "M4", "M5"]),
    ("not region=north", ["M5", "M6"]),
    ("cell in (c1, c3) and not model=Y", ["M1", "M2", "M5"]),
    ("ami_comm.version~\"2.*\"", ["M2", "M3"]),
    ("metrology.version>1.0 or serial=M1", ["M1", "M4", "M6"]),
    ("han_app.version>0.0.1", []),
    ("last_contact=none", ["M1", "M2", "M3", "M4", "M5", "M6"]),
    ("serial~\"M?\" and (region=south or cell=c2)", ["M3", "M4", "M5", "M6"]),
])
def test_filter_language_selects_by_semver_and_facts(store: Store, expr: str,
                                                      want: list[str]) -> None:
    _fleet(store)
    assert _match(store, expr) == want


@req("UMS-1", "UMS-3")
def test_saved_groups_static_and_filter(store: Store) -> None:
    _fleet(store)
    with store.session() as db:
        inventory.create_group(db, name="pilot", members=["M1", "M6"], now=NOW, actor="op")
        inventory.create_group(db, name="old-comm", filter_expr="ami_comm.version<2.0",
                               now=NOW, actor="op")
        with pytest.raises(AmiupError) as exc:
            inventory.create_group(db, name="pilot", now=NOW, actor="op")
        assert exc.value.code == "conflict"
    assert _match(store, "group=pilot") == ["M1", "M6"]
    assert _match(store, "group=old-comm and region=south") == ["M5"]
    assert _match(store, "group!=pilot and group=old-comm") == ["M2", "M4", "M5"]
    with store.session() as db:
        ids = db.scalars(inventory.target_meter_ids(db, {"kind": "group", "group": "old-comm"}))
        serials = sorted(db.scalars(select(Meter.serial).where(Meter.id.in_(list(ids)))))
    assert serials == ["M1", "M2", "M4", "M5"]
    with store.session() as db, pytest.raises(AmiupError):
        inventory.query(db, filter_expr="group=nope")


def _report(key: PrivateKey, nonce: bytes, *, comm: str = "2.0.0",
            local: tuple[LocalUpgrade, ...] = ()) -> bytes:
    def comp(v: str) -> ComponentStatus:
        return ComponentStatus(v, b"\x11" * 32, 3, None, None, "idle", None, None, 0, 0, None,
                               None)
    r = StatusReport("M1", NOW, nonce, 7, (0, b"\0" * 32),
                     {"ami_comm": comp(comm), "metrology": comp("1.0.0")}, None, local, {})
    return r.sign(key).to_bytes()


def _meter_with_key(store: Store) -> PrivateKey:
    key = generate_key()
    with store.session() as db:
        inventory.upsert_meter(db, serial="M1", model="X", now=NOW, actor="test",
                               public_key_der=public_bytes(key.public_key()),
                               components={"ami_comm": "1.0.0"})
    return key


@req("UMS-1", "UMS-8", "SEC-5")
def test_signed_report_with_nonce_updates_inventory(store: Store) -> None:
    key = _meter_with_key(store)
    with store.session() as db:
        nonce = inventory.issue_nonce(db, inventory.get_meter(db, "M1"))
    with store.session() as db:
        res = inventory.ingest_report(db, _report(key, nonce), now=NOW + 5, actor="headend")
    assert res.changed == {"ami_comm": ("1.0.0", "2.0.0"), "metrology": ("", "1.0.0")}
    assert _match(store, "ami_comm.version=2.0.0") == ["M1"]
    with store.session() as db:
        assert inventory.get_meter(db, "M1").last_contact == NOW + 5
        assert audit.verify(db).ok


@req("UMS-1", "SEC-5")
def test_replayed_report_refused(store: Store) -> None:
    key = _meter_with_key(store)
    with store.session() as db:
        nonce = inventory.issue_nonce(db, inventory.get_meter(db, "M1"))
    data = _report(key, nonce)
    with store.session() as db:
        inventory.ingest_report(db, data, now=NOW, actor="headend")
    with store.session() as db:
        inventory.issue_nonce(db, inventory.get_meter(db, "M1"))
    for _ in range(2):  # old report, new nonce outstanding
        with pytest.raises(AmiupError) as exc, store.session() as db:
            inventory.ingest_report(db, data, now=NOW + 1, actor="headend")
        assert exc.value.code == "report-replayed"


@req("UMS-1", "SEC-5")
def test_forged_report_refused(store: Store) -> None:
    _meter_with_key(store)
    with store.session() as db:
        nonce = inventory.issue_nonce(db, inventory.get_meter(db, "M1"))
    with pytest.raises(AmiupError) as exc, store.session() as db:
        inventory.ingest_report(db, _report(generate_key(), nonce, comm="9.9.9"), now=NOW,
                                actor="headend")
    assert exc.value.code == "bad-signature"
    assert _match(store, "ami_comm.version=9.9.9") == []


@req("UMS-10")
def test_field_upgrade_reconciled_at_next_contact(store: Store) -> None:
    key = _meter_with_key(store)
    up = LocalUpgrade(1, NOW - 100, "ami_comm", "2.1.0", "tool-7", "committed")
    for i in range(2):  # the meter keeps reporting it; it is reconciled once
        with store.session() as db:
            nonce = inventory.issue_nonce(db, inventory.get_meter(db, "M1"))
        with store.session() as db:
            res = inventory.ingest_report(db, _report(key, nonce, comm="2.1.0", local=(up,)),
                                          now=NOW + i, actor="headend")
        assert len(res.field_upgrades) == (1 if i == 0 else 0)
    assert _match(store, "ami_comm.version=2.1.0") == ["M1"]
    with store.session() as db:
        events = db.scalars(select(MeterEvent).where(MeterEvent.kind == "field-upgrade")).all()
        assert [(e.component, e.data["version"], e.data["tool_id"]) for e in events] == [
            ("ami_comm", "2.1.0", "tool-7")]


def test_bulk_register_is_queryable(store: Store) -> None:
    with store.session() as db:
        n = inventory.bulk_register(db, ({"serial": f"B{i:04d}", "model": "Z", "cell": f"c{i % 3}",
                                          "components": {"ami_app": f"1.{i % 4}.0"}}
                                         for i in range(250)), now=NOW, actor="sim", chunk=100)
    assert n == 250
    with store.session() as db:
        total, _ = inventory.query(db, filter_expr="cell=c0 and ami_app.version<1.2")
    assert total == len([i for i in range(250) if i % 3 == 0 and i % 4 < 2])
