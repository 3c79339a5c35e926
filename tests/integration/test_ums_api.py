"""The REST API: problem+json errors, uploads, inventory, groups, audit, exports; roles x routes."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from amiup.package import build_package
from amiup.trust import generate_key
from amiup.trust.keys import PrivateKey
from amiup.ums import auth
from amiup.ums.api import create_app
from amiup.ums.api.deps import api_routes, route_action
from amiup.ums.models import ROLES
from amiup.ums.store import Store
from reqmark import req
from support_ums import NOW, add_user, sqlite_store_fixture, store_fixture  # noqa: F401

DOCS = Path(__file__).resolve().parents[2] / "docs" / "ums.md"
OPEN_ROUTES = {("POST", "/auth/token"), ("GET", "/healthz")}


def _h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(store, clock=lambda: NOW)) as c:
        yield c


def _pem(key: PrivateKey) -> str:
    from cryptography.hazmat.primitives import serialization

    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def _problem(r: object, status: int, code: str) -> None:
    resp = r  # httpx.Response
    assert resp.status_code == status, resp.text  # type: ignore[attr-defined]
    assert resp.headers["content-type"].startswith("application/problem+json")  # type: ignore[attr-defined]
    body = resp.json()  # type: ignore[attr-defined]
    assert body["code"] == code and body["type"] == f"urn:amiup:problem:{code}"
    assert body["title"] and "detail" in body and body["status"] == status


@req("SEC-4")
def test_errors_are_problem_json(store: Store, client: TestClient) -> None:
    _problem(client.get("/meters"), 401, "unauthenticated")
    _problem(client.get("/meters", headers=_h("amiup_nope")), 401, "unauthenticated")
    viewer = add_user(store, "vic", ["viewer"])
    _problem(client.post("/groups", json={"name": "g"}, headers=_h(viewer)), 403, "forbidden")
    _problem(client.get("/meters/NOPE", headers=_h(viewer)), 404, "not-found")
    _problem(client.get("/meters?limit=0", headers=_h(viewer)), 422, "invalid-argument")
    _problem(client.get("/meters?filter=model%3D%3D", headers=_h(viewer)), 400,
             "invalid-argument")


@req("SEC-4")
def test_login_issues_token_and_wrong_password_is_audited(store: Store,
                                                          client: TestClient) -> None:
    with store.session() as db:
        auth.create_user(db, username="olga", password="s3cret-pass", roles=["operator"],
                         now=NOW, actor="t")
    r = client.post("/auth/token", json={"username": "olga", "password": "s3cret-pass"})
    assert r.status_code == 201
    token = r.json()["token"]
    assert client.get("/me", headers=_h(token)).json()["roles"] == ["operator"]
    _problem(client.post("/auth/token", json={"username": "olga", "password": "wrong-pass"}),
             401, "unauthenticated")
    admin = add_user(store, "ada", ["admin"])
    rows = client.get("/audit?action=auth.login", headers=_h(admin)).json()["items"]
    assert [(x["actor"], x["outcome"]) for x in rows] == [("olga", "unauthenticated")]


@req("UMS-2", "UMS-1", "UMS-11", "SEC-4", "SEC-5")
def test_upload_inventory_groups_audit_exports(store: Store, client: TestClient) -> None:
    admin, uploader = add_user(store, "ada", ["admin"]), add_user(store, "ulf", ["uploader"])
    operator = add_user(store, "otto", ["operator"])
    key = generate_key()
    r = client.post("/vendor-keys", json={"vendor": "acme", "public_key_pem": _pem(key)},
                    headers=_h(admin))
    assert r.status_code == 201, r.text
    pkg = build_package(b"fw" * 500, component="ami_comm", version="2.0.0", security_seq=2,
                        vendor="acme", model="X", hw_revs=["A"], sign_keys=[key], created=1)
    octets = {"Content-Type": "application/octet-stream"}
    r = client.post("/packages", content=pkg, headers=_h(uploader) | octets)
    assert r.status_code == 201, r.text
    digest = r.json()["digest"]
    _problem(client.post("/packages", content=pkg[:-1] + b"!", headers=_h(uploader) | octets),
             422, "digest-mismatch")
    _problem(client.post("/packages", content=pkg, headers=_h(operator) | octets), 403,
             "forbidden")
    assert client.get(f"/packages/{digest[:12]}/file", headers=_h(operator)).content == pkg
    assert client.get("/packages?component=ami_comm", headers=_h(operator)).json()["total"] == 1

    for i, (model, comm) in enumerate([("X", "1.9.0"), ("X", "2.0.0"), ("Y", "1.0.0")]):
        r = client.put(f"/meters/M{i}", json={"model": model, "region": "north",
                                              "cell": f"c{i}", "components": {"ami_comm": comm}},
                       headers=_h(operator))
        assert r.status_code == 200, r.text
    page = client.get("/meters", params={"filter": "model=X and ami_comm.version<2.0"},
                      headers=_h(operator)).json()
    assert [m["serial"] for m in page["items"]] == ["M0"] and page["total"] == 1
    page = client.get("/meters?limit=2&offset=1", headers=_h(operator)).json()
    assert [m["serial"] for m in page["items"]] == ["M1", "M2"] and page["total"] == 3

    r = client.post("/groups", json={"name": "pilot", "members": ["M0", "M2"]},
                    headers=_h(operator))
    assert r.status_code == 201 and r.json()["size"] == 2
    r = client.post("/groups", json={"name": "old", "filter": "ami_comm.version<2"},
                    headers=_h(operator))
    assert r.status_code == 201 and r.json()["size"] == 2
    r = client.get("/groups/pilot/meters", headers=_h(operator)).json()
    assert [m["serial"] for m in r["items"]] == ["M0", "M2"]
    _problem(client.post("/groups/old/members", json={"serials": ["M1"]},
                         headers=_h(operator)), 400, "invalid-argument")

    csv_text = client.get("/exports/inventory?format=csv&filter=cell%3Dc1",
                          headers=_h(operator)).text
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    assert [(r["serial"], r["ami_comm.running"]) for r in rows] == [("M1", "2.0.0")]
    js = client.get("/exports/inventory?format=json", headers=_h(operator)).json()
    assert [m["serial"] for m in js] == ["M0", "M1", "M2"]
    _problem(client.get("/exports/campaigns/99", headers=_h(operator)), 404, "not-found")

    _problem(client.get("/audit", headers=_h(operator)), 403, "forbidden")
    assert client.get("/audit/verify", headers=_h(admin)).json()["ok"] is True
    trail = client.get("/exports/audit?format=json", headers=_h(admin)).json()
    actions = [(r["actor"], r["action"], r["outcome"]) for r in trail]
    assert ("ulf", "package.import", "ok") in actions
    assert ("ulf", "package.import", "digest-mismatch") in actions
    assert ("otto", "group.create", "ok") in actions


# --------------------------------------------------------------------------- role x route


def _routes(app: object) -> list[tuple[str, APIRoute]]:
    return api_routes(app)


def _matrix_lines(app: object) -> list[str]:
    """The permission table as docs/ums.md prints it: one line per route."""
    out = []
    for path, r in sorted(_routes(app), key=lambda pr: (pr[0], sorted(pr[1].methods))):
        for method in sorted(r.methods):
            action = route_action(r)
            if action is None:
                continue
            marks = " | ".join("yes" if auth.allowed([role], action) else "-" for role in ROLES)
            out.append(f"| {method} {path} | {action} | {marks} |")
    return out


@req("SEC-4")
def test_every_route_checks_a_permission(sqlite_store: Store) -> None:
    app = create_app(sqlite_store)
    routes = _routes(app)
    assert len(routes) >= 20
    for path, r in routes:
        for method in r.methods:
            if (method, path) in OPEN_ROUTES:
                continue
            assert route_action(r) is not None, f"{method} {path} has no Require(...)"


@req("SEC-4")
def test_permission_matrix_is_documented(sqlite_store: Store) -> None:
    doc = DOCS.read_text(encoding="utf-8")
    missing = [line for line in _matrix_lines(create_app(sqlite_store)) if line not in doc]
    assert not missing, "docs/ums.md lacks (or differs on) these lines:\n" + "\n".join(missing)


def _fill(path: str) -> str:
    return re.sub(r"\{[^}]+\}", lambda m: "999999" if m.group(0).endswith("id}") else "x", path)


@req("SEC-4", "MET-4")
@pytest.mark.parametrize("role", ROLES)
def test_role_route_matrix(sqlite_store: Store, role: str) -> None:
    token = add_user(sqlite_store, f"u-{role}", [role])
    app = create_app(sqlite_store, clock=lambda: NOW)
    checked = 0
    with TestClient(app) as c:
        for path, r in _routes(app):
            action = route_action(r)
            if action is None:
                continue
            for method in r.methods:
                resp = c.request(method, _fill(path), headers=_h(token), json={})
                if auth.allowed([role], action):
                    assert resp.status_code not in (401, 403), (role, method, path, resp.text)
                    assert resp.status_code < 500, (role, method, path, resp.text)
                else:
                    assert resp.status_code == 403, (role, method, path, resp.status_code)
                    assert resp.json()["code"] == "forbidden"
                checked += 1
    assert checked >= 20


@req("SEC-4")
def test_separation_of_duties_in_the_table() -> None:
    # the duties that must never meet in one role
    for a, b in [("package.upload", "campaign.approve"), ("campaign.create", "campaign.approve"),
                 ("campaign.approve", "campaign.launch"), ("user.write", "campaign.approve"),
                 ("user.write", "package.upload"), ("vendor_key.write", "package.upload")]:
        assert not (auth.PERMISSIONS[a] & auth.PERMISSIONS[b]), (a, b)
    with pytest.raises(Exception) as exc:
        auth.check_separation(7, 7)
    assert getattr(exc.value, "code", None) == "forbidden"
    auth.check_separation(7, 8)


@req("SEC-4")
def test_revoked_token_and_disabled_user_refused_at_once(store: Store,
                                                          client: TestClient) -> None:
    admin = add_user(store, "ada", ["admin"])
    viewer = add_user(store, "vic", ["viewer"])
    issued = client.post("/tokens", json={"name": "second"}, headers=_h(viewer)).json()
    second = issued["token"]
    assert client.get("/me", headers=_h(second)).status_code == 200  # now cached
    assert client.delete(f"/tokens/{issued['id']}", headers=_h(viewer)).status_code == 200
    _problem(client.get("/me", headers=_h(second)), 401, "unauthenticated")
    assert client.get("/me", headers=_h(viewer)).status_code == 200
    r = client.patch("/users/vic", json={"active": False}, headers=_h(admin))
    assert r.status_code == 200 and r.json()["active"] is False
    _problem(client.get("/me", headers=_h(viewer)), 401, "unauthenticated")


def test_token_cache_expires_and_respects_token_expiry() -> None:
    from amiup.ums.api.deps import TokenCache

    p = auth.Principal(1, "u", frozenset({"viewer"}), expires_at=NOW + 10)
    cache = TokenCache(ttl_s=60)
    cache.put("amiup_x", p)
    assert cache.get("amiup_x", NOW) == p
    assert cache.get("amiup_x", NOW + 10) is None  # the token itself expired
    assert cache.get("amiup_y", NOW) is None
    off = TokenCache(ttl_s=0)
    off.put("amiup_x", p)
    assert off.get("amiup_x", NOW) is None
