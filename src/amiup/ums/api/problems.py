"""Errors as RFC 9457 problem+json: every failure a client sees has a stable ``code``.

The HTTP status follows the error's family and code (see ``STATUS``); ``type`` is
``urn:amiup:problem:<code>`` so clients can branch on it without parsing text.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from amiup.errors import CODES, AmiupError

MEDIA_TYPE = "application/problem+json"

STATUS: dict[str, int] = {
    "invalid-argument": 400,
    "unauthenticated": 401,
    "forbidden": 403,
    "not-found": 404,
    "conflict": 409,
    "too-large": 413,
    "invalid-state": 409,
    "busy": 409,
    "store-error": 503,
    "io-error": 503,
    "timeout": 504,
    "unreachable": 503,
}
_BY_FAMILY = {"rejected": 422, "usage": 400, "operational": 503}
_HTTP_CODES = {400: "invalid-argument", 401: "unauthenticated", 403: "forbidden",
               404: "not-found", 405: "invalid-argument", 406: "invalid-argument",
               409: "conflict", 413: "too-large", 415: "invalid-argument",
               422: "invalid-argument"}


def status_for(code: str) -> int:
    """HTTP status of a stable error code."""
    if code in STATUS:
        return STATUS[code]
    return _BY_FAMILY[CODES[code].family] if code in CODES else 500


def problem(status: int, code: str, detail: str, **extra: Any) -> JSONResponse:
    """A problem+json response."""
    title = CODES[code].explanation if code in CODES else code
    body = {"type": f"urn:amiup:problem:{code}", "title": title, "status": status,
            "detail": detail, "code": code, **extra}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into problem+json."""

    @app.exception_handler(AmiupError)
    async def _amiup(_req: Request, exc: AmiupError) -> JSONResponse:
        return problem(status_for(exc.code), exc.code, exc.detail or exc.explanation)

    @app.exception_handler(IntegrityError)
    async def _integrity(_req: Request, exc: IntegrityError) -> JSONResponse:
        return problem(409, "conflict", "the change conflicts with existing data "
                                        f"({str(exc.orig).splitlines()[0][:200]})")

    @app.exception_handler(RequestValidationError)
    async def _validation(_req: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": [str(x) for x in e.get("loc", ())], "msg": str(e.get("msg", ""))}
                  for e in exc.errors()][:20]
        return problem(422, "invalid-argument", "request does not match the API schema",
                       errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_req: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "invalid-argument")
        return problem(exc.status_code, code, str(exc.detail))
