"""
Errors as RFC 9457 problem details.

Every error response is ``application/problem+json`` with a stable ``type``
URN, so clients branch on ``type`` and show ``detail`` to people. This module
is the one place that maps docmill's errors to HTTP.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError as SQLAlchemyDBAPIError
from sqlalchemy.exc import InterfaceError as SQLAlchemyInterfaceError
from sqlalchemy.exc import OperationalError as SQLAlchemyOperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from docmill.db.errors import disk_full, unavailable, unwritable
from docmill.exceptions import (
    SHOWN_CHARS,
    DocumentNotFound,
    TooLarge,
    UploadTimeout,
    echoed,
)
from docmill.storage import storage_failure

logger = logging.getLogger(__name__)

PROBLEM_TYPE_PREFIX = "urn:docmill:problem:"
DATABASE_RETRY_SECONDS = 5
# A full or read-only disk waits for an operator: longer than a database blip.
STORAGE_RETRY_SECONDS = 30
# The most of a request's path a problem repeats as its ``instance``.
INSTANCE_CHARS = 256


class Problem(Exception):
    """An error response the API sends on purpose."""

    def __init__(
        self,
        status: int,
        slug: str,
        detail: str,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        self.status = status
        self.slug = slug
        self.detail = detail
        self.headers = headers
        self.extensions = extensions
        super().__init__(detail)


def problem_response(
    request: Request,
    status: int,
    slug: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    body = {
        "type": PROBLEM_TYPE_PREFIX + slug,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": _instance(request.url.path),
        **extensions,
    }
    return JSONResponse(
        body, status_code=status, headers=headers, media_type="application/problem+json"
    )


def _instance(path: str) -> str:
    """
    ``path`` as a problem's ``instance``: a segment longer than
    ``SHOWN_CHARS`` is cut to that and marked ``...``, as an id is in a
    detail, and so is the whole past ``INSTANCE_CHARS``. The route's own
    words stay readable either side of a 5,000-character id.
    """
    if len(path) <= SHOWN_CHARS:
        return path
    path = "/".join(
        part if len(part) <= SHOWN_CHARS else part[:SHOWN_CHARS] + "..."
        for part in path.split("/")
    )
    if len(path) > INSTANCE_CHARS:
        path = path[:INSTANCE_CHARS] + "..."
    return path


def load_json(data: str | bytes, what: str, slug: str = "validation") -> Any:
    """
    Parse a JSON text a caller sent, or raise a 422 that says what is wrong.

    Python's reader takes ``NaN``, ``Infinity`` and numbers too large for a
    float (``1e400`` becomes infinity), none of which JSON has: PostgreSQL
    refused to store them (a 500) and SQLite kept a null. They are refused
    here, where every caller's JSON comes in.

    Args:
        what: how the detail names the text, e.g. "the body".
    """
    try:
        return json.loads(data, parse_float=_finite, parse_constant=_no_constant)
    except RecursionError as exc:
        # json gives up past the interpreter's recursion limit (about a
        # thousand levels); that text is valid JSON, just too deep to read.
        raise Problem(422, slug, f"{what} is nested too deeply") from exc
    except _NotFinite as exc:
        raise Problem(
            422, slug, f"{what} holds {exc}, which is not a finite number"
        ) from exc
    except ValueError as exc:
        raise Problem(422, slug, f"{what} is not valid JSON") from exc


class _NotFinite(ValueError):
    pass


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotFinite(text[:40])
    return value


def _no_constant(name: str) -> Any:
    raise _NotFinite(name)


_HTTP_SLUGS = {
    404: "not-found",
    405: "method-not-allowed",
    413: "too-large",
    415: "unsupported-media-type",
}


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(
            request, exc.status, exc.slug, exc.detail, exc.headers, **exc.extensions
        )

    @app.exception_handler(DocumentNotFound)
    async def _not_found(request: Request, exc: DocumentNotFound) -> JSONResponse:
        document_id = echoed(exc.document_id)
        named: dict[str, Any] = (
            {} if document_id is None else {"document_id": document_id}
        )
        return problem_response(request, 404, "document-not-found", str(exc), **named)

    @app.exception_handler(TooLarge)
    async def _too_large(request: Request, exc: TooLarge) -> JSONResponse:
        return problem_response(request, 413, "too-large", exc.message)

    @app.exception_handler(UploadTimeout)
    async def _upload_timeout(request: Request, exc: UploadTimeout) -> JSONResponse:
        return problem_response(request, 408, "upload-timeout", str(exc))

    @app.exception_handler(SQLAlchemyOperationalError)
    @app.exception_handler(SQLAlchemyInterfaceError)
    @app.exception_handler(ConnectionError)
    @app.exception_handler(TimeoutError)
    async def _database_down(request: Request, exc: Exception) -> JSONResponse:
        if disk_full(exc):
            return _no_room(request, exc)
        # A database that cannot be reached is the service's trouble, not the
        # caller's: 503, never the 429 that means "you are sending too much".
        logger.warning(
            "database unavailable: %s",
            type(exc).__name__,
            extra={"action": "database_unavailable"},
        )
        return problem_response(
            request,
            503,
            "database-unavailable",
            "the database cannot be reached; retry after the time in Retry-After",
            {"Retry-After": str(DATABASE_RETRY_SECONDS)},
        )

    @app.exception_handler(SQLAlchemyDBAPIError)
    async def _database_error(request: Request, exc: Exception) -> JSONResponse:
        # A connection that dropped mid-statement (a restarted or
        # overloaded PostgreSQL, a killed backend) comes back from asyncpg
        # as a driver error that SQLAlchemy does not class as operational.
        assert isinstance(exc, SQLAlchemyDBAPIError)
        if unavailable(exc) or disk_full(exc):
            return await _database_down(request, exc)
        raise exc

    @app.exception_handler(sqlite3.Error)
    async def _sqlite_refused(request: Request, exc: Exception) -> JSONResponse:
        # The SQLite writer's own connection (group commits, results)
        # raises the driver's errors unwrapped.
        if unwritable(exc):
            return await _database_down(request, exc)
        raise exc

    @app.exception_handler(OSError)
    async def _storage_failed(request: Request, exc: Exception) -> JSONResponse:
        # ConnectionError and TimeoutError, OSErrors too, have their own
        # handler above; this one takes what a write to the data directory
        # raises. A full disk is refused as such, one log line, no traceback:
        # the same request passes once there is room, without a restart.
        failure = storage_failure(exc)
        if failure is None:
            raise exc
        logger.error(
            "storage %s: %s",
            "full" if failure == "full" else "unavailable",
            str(exc)[:300],
            extra={"action": "storage_" + failure},
        )
        if failure == "full":
            return _insufficient_storage(request)
        return problem_response(
            request,
            503,
            "storage-unavailable",
            "the server cannot write to its storage just now; "
            "retry after the time in Retry-After",
            {"Retry-After": str(STORAGE_RETRY_SECONDS)},
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(error["loc"]), "msg": error["msg"], "type": error["type"]}
            for error in exc.errors()
        ]
        return problem_response(
            request, 422, "validation", "the request is not valid", errors=errors
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        slug = _HTTP_SLUGS.get(exc.status_code, f"http-{exc.status_code}")
        headers = dict(exc.headers) if exc.headers else None
        if exc.status_code == 405:
            named = (headers or {}).get("Allow", "")
            headers = (headers or {}) | {"Allow": _allowed_methods(request, named)}
        return problem_response(
            request, exc.status_code, slug, str(exc.detail), headers
        )


def _no_room(request: Request, exc: Exception) -> JSONResponse:
    """
    The database's disk is full: a 507 as for a full data directory, since
    the same request passes once an operator frees room, not in seconds.
    """
    logger.error(
        "database full: %s",
        str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__,
        extra={"action": "database_full"},
    )
    return _insufficient_storage(request)


def _insufficient_storage(request: Request) -> JSONResponse:
    return problem_response(
        request,
        507,
        "insufficient-storage",
        "the server has no room to store the document; retry later",
        {"Retry-After": str(STORAGE_RETRY_SECONDS)},
    )


_METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request, named: str) -> str:
    """
    Every method this path answers, for a 405's ``Allow``: those the
    OpenAPI document lists for it, and ``named``, what Starlette found.

    Starlette names only the first route whose path matched, so
    ``/documents/{id}`` said ``GET`` although it also answers DELETE.
    """
    methods = {m.strip().upper() for m in named.split(",") if m.strip()}
    path = request.scope["path"]
    for template, operations in request.app.openapi()["paths"].items():
        if compile_path(template)[0].match(path):
            methods |= {m.upper() for m in operations if m.upper() in _METHOD_ORDER}
    if "GET" in methods:
        # RequestContextMiddleware answers HEAD wherever GET is.
        methods.add("HEAD")
    order = {method: n for n, method in enumerate(_METHOD_ORDER)}
    return ", ".join(sorted(methods, key=lambda m: (order.get(m, len(order)), m)))
