"""Meter listing after the speed work: totals, paging, components, and what may be cached.

``inventory.query`` builds its statements once per filter text and skips the count when the
first page holds every match; these tests pin that the answers stay those of a plain query.
"""

from __future__ import annotations

from amiup.ums import inventory
from amiup.ums.filters import compile_filter, static_condition
from amiup.ums.store import Store
from reqmark import req
from support_ums import NOW, store_fixture  # noqa: F401


def _fleet(store: Store, n: int) -> None:
    with store.session() as db:
        inventory.bulk_register(db, ({"serial": f"L{i:03d}", "model": f"M{i % 2}",
                                      "components": ({"ami_comm": f"1.{i % 5}.0"}
                                                     if i % 7 else {})}
                                     for i in range(n)), now=NOW, actor="test")


def _page(store: Store, expr: str | None, limit: int, offset: int) -> tuple[int, list[str]]:
    with store.session(readonly=True) as db:
        total, rows = inventory.query(db, filter_expr=expr, limit=limit, offset=offset)
    return total, [r["serial"] for r in rows]


@req("UMS-1")
def test_pages_and_totals_match_the_full_answer(store: Store) -> None:
    _fleet(store, 60)
    want = [f"L{i:03d}" for i in range(60) if i % 2 == 1 and i % 7 and i % 5 < 3]
    expr = "model=M1 and ami_comm.version<1.3"
    got: list[str] = []
    for offset in range(0, 40, 7):
        total, serials = _page(store, expr, 7, offset)
        assert total == len(want)
        got += serials
    assert got == want
    assert _page(store, expr, 1000, 0) == (len(want), want)  # one page holds all: no count
    assert _page(store, expr, 5, 500) == (len(want), [])     # past the end: still the total
    assert _page(store, None, 10, 55) == (60, [f"L{i:03d}" for i in range(55, 60)])


@req("UMS-1")
def test_components_come_with_each_meter_even_when_none(store: Store) -> None:
    _fleet(store, 8)
    with store.session(readonly=True) as db:
        _, rows = inventory.query(db, limit=8)
    by_serial = {r["serial"]: r["components"] for r in rows}
    assert by_serial["L000"] == {}  # registered without components: still listed
    assert by_serial["L003"] == {"ami_comm": {"running": "1.3.0", "staged": None,
                                              "security_seq": 0}}


@req("UMS-1", "UMS-3")
def test_cached_statements_still_read_the_store_now(store: Store) -> None:
    _fleet(store, 10)
    expr = "ami_comm.version>=1.4"
    before = _page(store, expr, 100, 0)
    with store.session() as db:
        inventory.upsert_meter(db, serial="L000", model="M0", components={"ami_comm": "1.4.0"},
                               now=NOW, actor="test")
        inventory.create_group(db, name="pilot", members=["L001"], now=NOW, actor="op")
    after = _page(store, expr, 100, 0)
    assert after == (before[0] + 1, ["L000", *before[1]])
    assert static_condition(expr) is static_condition(expr)  # parsed and built once
    assert static_condition("group=pilot") is None  # depends on the store: never cached
    assert _page(store, "group=pilot", 100, 0) == (1, ["L001"])
    with store.session() as db:
        inventory.set_members(db, inventory.get_group(db, "pilot"), ["L002"], add=True)
    assert _page(store, "group=pilot", 100, 0) == (2, ["L001", "L002"])
    with store.session(readonly=True) as db:
        assert compile_filter("group=pilot", db) is not compile_filter("group=pilot", db)
