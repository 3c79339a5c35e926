"""Routes of the catalog: upload (verified on import), list, search, download; vendor keys."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from amiup.errors import error
from amiup.ums import catalog
from amiup.ums.api.deps import NowDep, Require, StoreDep, read
from amiup.ums.api.pem import pem_to_der
from amiup.ums.api.schemas import PackagePublic, Page, VendorKeyCreate, VendorKeyPublic
from amiup.ums.auth import Principal
from amiup.ums.models import VendorKey

router = APIRouter(tags=["packages"])
_OCTETS = {"requestBody": {"required": True, "content": {
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}


def _public(p: catalog.Package) -> PackagePublic:
    return PackagePublic(**catalog.package_dict(p))


@router.get("/packages", response_model=Page[PackagePublic])
async def list_packages(
    request: Request, _: Annotated[Principal, Require("package.read")],
    vendor: Annotated[str | None, Query(max_length=128)] = None,
    model: Annotated[str | None, Query(max_length=128)] = None,
    component: Annotated[str | None, Query(max_length=32)] = None,
    version: Annotated[str | None, Query(max_length=64)] = None,
    q: Annotated[str | None, Query(max_length=128, description="text in notes/model/...")] = None,
    metrology: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31)] = 0,
) -> dict[str, Any]:
    """Search the catalog (UMS-2)."""

    def page(db: Session) -> dict[str, Any]:
        total, rows = catalog.search(db, vendor=vendor, model=model, component=component,
                                     version=version, text=q, metrology=metrology,
                                     limit=limit, offset=offset)
        return {"items": [catalog.package_dict(p) for p in rows], "total": total,
                "limit": limit, "offset": offset}

    return await read(request, page)


@router.post("/packages", response_model=PackagePublic, status_code=201, openapi_extra=_OCTETS)
async def upload_package(request: Request, p: Annotated[Principal, Require("package.upload")],
                         store: StoreDep, now: NowDep) -> PackagePublic:
    """Import a `.amiup` file (raw body); refused with its code when it does not verify."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > catalog.MAX_PACKAGE_BYTES:
            raise error("too-large", f"package larger than {catalog.MAX_PACKAGE_BYTES} bytes")
    pkg = await run_in_threadpool(catalog.import_package, store, bytes(body), now=now,
                                  actor=p.username)
    return _public(pkg)


@router.get("/packages/{ref}", response_model=PackagePublic)
def get_package(ref: str, _: Annotated[Principal, Require("package.read")],
                store: StoreDep) -> PackagePublic:
    """One package by id or (a prefix of) its manifest digest or file SHA-256."""
    with store.session(readonly=True) as db:
        return _public(catalog.get(db, ref[:64]))


@router.get("/packages/{ref}/file", response_class=Response,
            responses={200: {"content": {"application/octet-stream": {}}}})
def download_package(ref: str, _: Annotated[Principal, Require("package.read")],
                     store: StoreDep) -> Response:
    """The package file itself (checked against its SHA-256 before it is sent)."""
    with store.session(readonly=True) as db:
        pkg = catalog.get(db, ref[:64])
    return Response(catalog.read_package(store, pkg), media_type="application/octet-stream",
                    headers={"Content-Disposition": f'attachment; filename="{pkg.digest}.amiup"'})


def _key(k: VendorKey) -> VendorKeyPublic:
    return VendorKeyPublic(key_id=k.key_id, vendor=k.vendor, added_by=k.added_by,
                           added_at=k.added_at, revoked=k.revoked)


@router.get("/vendor-keys", response_model=list[VendorKeyPublic])
def list_vendor_keys(_: Annotated[Principal, Require("vendor_key.read")],
                     store: StoreDep) -> list[VendorKeyPublic]:
    """The vendor keys the catalog trusts."""
    with store.session(readonly=True) as db:
        return [_key(k) for k in db.scalars(select(VendorKey).order_by(VendorKey.id))]


@router.post("/vendor-keys", response_model=VendorKeyPublic, status_code=201)
def add_vendor_key(body: VendorKeyCreate, p: Annotated[Principal, Require("vendor_key.write")],
                   store: StoreDep, now: NowDep) -> VendorKeyPublic:
    """Trust a vendor's public key (PEM) for that vendor's packages (admin)."""
    der = pem_to_der(body.public_key_pem)
    with store.session() as db:
        return _key(catalog.add_vendor_key(db, vendor=body.vendor, public_key=der, now=now,
                                           actor=p.username))


@router.delete("/vendor-keys/{key_id}", response_model=VendorKeyPublic)
def revoke_vendor_key(key_id: str, p: Annotated[Principal, Require("vendor_key.write")],
                      store: StoreDep, now: NowDep) -> VendorKeyPublic:
    """Stop trusting a vendor key for new imports (admin)."""
    with store.session() as db:
        return _key(catalog.revoke_vendor_key(db, key_id_hex=key_id[:64], now=now,
                                              actor=p.username))
