"""Campaign REST routes and the head-end HTTP API, through FastAPI's test client."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from amiup.fleet.wiring import World
from amiup.ums.api import create_app
from amiup.ums.headend_api import HeadEndClient, run_remote_headend, set_order_signer
from amiup.ums.scheduler import OrderSigner
from amiup.ums.store import Store
from reqmark import req
from support_campaign import T0, states, world
from support_ums import add_user, sqlite_store_fixture  # noqa: F401


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(name="env")
def env_fixture(sqlite_store: Store) -> tuple[World, TestClient, dict[str, str]]:
    w = world(sqlite_store, 12, cells=3)
    app = create_app(sqlite_store, clock=lambda: T0)
    set_order_signer(app, OrderSigner(w.keys.utility))
    tokens = {name: add_user(sqlite_store, name, roles)
              for name, roles in (("op", ["operator"]), ("ap", ["approver"]),
                                  ("viewer", ["viewer"]), ("he", ["operator"]),
                                  ("he2", ["operator"]))}
    return w, TestClient(app), tokens


@req("UMS-3", "UMS-5", "SEC-4")
def test_campaign_flow_over_rest_with_roles(env: tuple[World, TestClient, dict[str, str]]) -> None:
    w, client, tok = env
    body = {"name": "spring", "package_id": w.package_id, "target": {"kind": "fleet"},
            "waves": {"pilot": 3, "steps": ["50%"]}, "windows": ["00:00-24:00"],
            "timezone": "Europe/Paris", "retry": {"max_attempts": 3}}
    assert client.post("/campaigns", json=body, headers=bearer(tok["viewer"])).status_code == 403
    r = client.post("/campaigns", json=body, headers=bearer(tok["op"]))
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    assert r.json()["state"] == "draft" and r.json()["target"]["resolved"]["assigned"] == 12
    r = client.post(f"/campaigns/{cid}/approve", headers=bearer(tok["op"]))
    assert r.status_code == 403  # operators do not approve
    r = client.post(f"/campaigns/{cid}/start", headers=bearer(tok["op"]))
    assert r.status_code == 409 and r.json()["code"] == "invalid-state"
    assert client.post(f"/campaigns/{cid}/approve", headers=bearer(tok["ap"])).status_code == 200
    assert client.post(f"/campaigns/{cid}/start", headers=bearer(tok["ap"])).status_code == 403
    assert client.post(f"/campaigns/{cid}/start", headers=bearer(tok["op"])).json()["state"] \
        == "running"
    p = client.get(f"/campaigns/{cid}/progress", headers=bearer(tok["viewer"])).json()
    assert p["states"]["pending"] == 12 and [x["planned"] for x in p["waves"]] == [3, 3, 6]
    page = client.get("/campaigns?state=running", headers=bearer(tok["viewer"])).json()
    assert page["total"] == 1 and page["items"][0]["id"] == cid
    r = client.post(f"/campaigns/{cid}/pause", json={"reason": "storm"},
                    headers=bearer(tok["op"]))
    assert r.json()["state"] == "paused" and r.json()["state_reason"] == "storm"
    assert client.get("/campaigns/999", headers=bearer(tok["viewer"])).status_code == 404


def test_bad_campaign_bodies_are_problems_not_crashes(
    env: tuple[World, TestClient, dict[str, str]],
) -> None:
    w, client, tok = env
    base = {"name": "x", "package_id": w.package_id, "target": {"kind": "fleet"}}
    for patch in ({"windows": ["99:00-01:00"]}, {"timezone": "Nowhere"},
                  {"waves": {"pilot": "300%"}}, {"package_id": 424242},
                  {"target": {"kind": "meters"}}, {"activation": {"mode": "at"}}):
        r = client.post("/campaigns", json={**base, **patch}, headers=bearer(tok["op"]))
        assert 400 <= r.status_code < 500, (patch, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")


@req("UMS-5", "SEC-3", "UMS-8")
def test_a_remote_head_end_pulls_work_and_posts_results(
    env: tuple[World, TestClient, dict[str, str]], tmp_path: Path,
) -> None:
    w, client, tok = env
    r = client.post("/campaigns", headers=bearer(tok["op"]), json={
        "name": "remote", "package_id": w.package_id, "target": {"kind": "fleet"}})
    cid = r.json()["id"]
    client.post(f"/campaigns/{cid}/approve", headers=bearer(tok["ap"]))
    client.post(f"/campaigns/{cid}/start", headers=bearer(tok["op"]))
    assert client.post("/headend/claim", json={"max": 5},
                       headers=bearer(tok["viewer"])).status_code == 403
    # another head-end cannot report on work it does not hold
    r = client.post("/headend/claim", json={"max": 2}, headers=bearer(tok["he2"]))
    jobs = r.json()["jobs"]
    assert len(jobs) == 2 and all(j["order"] for j in jobs)
    fake = [{"assignment_id": j["assignment_id"], "attempt": j["attempt"], "kind": "running",
             "version": "2.0.0"} for j in jobs]
    r = client.post("/headend/reports", json={"reports": fake}, headers=bearer(tok["he"]))
    assert r.json() == {"applied": 0, "ignored": 2}
    r = client.post("/headend/reports", headers=bearer(tok["he"]), json={"reports": [
        {"assignment_id": 1, "attempt": 1, "kind": "failed", "code": "made-up"}]})
    assert r.status_code == 400
    # the real head-end loop over HTTP, driving the simulated meters; it verifies orders
    he = HeadEndClient("http://testserver", tok["he"], http=client)
    rounds = run_remote_headend(he, w.headend, batch=4, idle_sleep=0, max_rounds=6,
                                clock=lambda: T0)
    assert rounds == 6
    assert states(w.store, cid) == {"confirmed": 10, "offered": 2}  # he2's two still held
    assert set(w.sim.activations("ami_app").values()) == {0, 1}
