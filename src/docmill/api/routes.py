"""The resources: documents, their text, and the service's health."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, PlainTextResponse, StreamingResponse
from sqlalchemy import text as sql_text

from docmill.api import auth
from docmill.api.app import Services
from docmill.api.auth import GuardedRoute
from docmill.api.problems import Problem
from docmill.api.schemas import (
    ESCAPE_FORMULAS_DESCRIPTION,
    DocumentOut,
    DocumentPage,
    ErrorOut,
    Health,
    ProgressOut,
    Readiness,
    ResultOut,
    Status,
)
from docmill.api.submit import accept_single, accepted_headers, queue_full
from docmill.db.migrate import is_current
from docmill.exceptions import DocumentNotFound, OriginalMissing, QueueFull
from docmill.extract.textcodec import charset_label

router = APIRouter(route_class=GuardedRoute)

# An original is whatever a caller uploaded, served under this origin: an
# HTML or SVG file opened in a browser must not run script here (it could
# read other documents with the viewer's session key), nor be framed.
ORIGINAL_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; sandbox; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
}

_SUBMIT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "The document. The only part that may "
                            "carry a filename, which it may also go without: "
                            "a file in any other part is 422. "
                            "A `charset` in its Content-Type (`text/plain; "
                            "charset=windows-1253`) is the text's encoding, "
                            "tried after a byte-order mark and before "
                            "detection; a name that is no text encoding is 422.",
                        },
                        "title": {"type": "string"},
                        "metadata": {
                            "type": "string",
                            "description": "A JSON object, as text.",
                        },
                        "priority": {"type": "integer"},
                        "client_ref": {"type": "string"},
                        "callback_url": {"type": "string"},
                        "dedupe": {"type": "boolean"},
                    },
                }
            },
            "application/json": {
                "schema": {"$ref": "#/components/schemas/TextSubmission"}
            },
        },
    }
}


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


@router.post(
    "/documents",
    status_code=202,
    response_model=DocumentOut,
    openapi_extra=_SUBMIT_BODY,
    responses={
        409: {"description": "Idempotency-Key reused for another request"},
        413: {"description": "Too large"},
        415: {"description": "Unsupported media type"},
        422: {"description": "Invalid"},
        429: {"description": "Queue full or rate limited"},
        503: {"description": "Database unavailable"},
    },
    tags=["documents"],
)
async def submit_document(request: Request) -> Response:
    """
    Queue a document: a multipart file upload, or raw text or a URL as JSON.

    Answers at once, before extraction; poll the `Location` for the result.
    A repeated request with the same `Idempotency-Key` returns the first
    document (with `Idempotent-Replayed: true`).
    """
    submitted = await accept_single(request)
    if submitted.row is not None and submitted.duplicate_of is None:
        # Answer with the document as accepted: a worker may claim it before
        # a second read, and "pending" is what this request did.
        document = document_from_row(submitted.row)
    else:
        document = await document_by_id(_services(request), submitted.document_id)
    answer = _json_answer(document, status_code=202)
    answer.raw_headers.extend(accepted_headers(submitted))
    return answer


async def _owned_row(request: Request, document_id: str) -> Any:
    """The document's row, if the caller may see it; else DocumentNotFound."""
    row = await _services(request).store.get(document_id)
    owner = auth.owner(request)
    if owner is not None and row.owner != owner:
        raise DocumentNotFound(document_id)
    return row


async def document_by_id(services: Services, document_id: str) -> DocumentOut:
    row, content = await services.store.get_summary(document_id)
    return document_from_row(row, content if row.status == "completed" else None)


async def _document_out(request: Request, document_id: str) -> DocumentOut:
    services = _services(request)
    row, content = await services.store.get_summary(document_id)
    owner = auth.owner(request)
    if owner is not None and row.owner != owner:
        raise DocumentNotFound(document_id)
    parsed = None
    if row.status != "completed":
        content = None
    elif row.parser:
        from docmill.parsing.store import ParserStore

        parsed = await ParserStore(services.engine).get_fields(document_id, row.parser)
    return document_from_row(row, content, parsed)


def document_from_row(row: Any, content: Any = None, parsed: Any = None) -> DocumentOut:
    error = None
    if row.error_code:
        error = ErrorOut(code=row.error_code, message=row.error_message or "")
    result = None
    if row.status == "completed":
        result = ResultOut(
            mime_type=row.mime_type,
            word_count=row.word_count,
            char_count=row.char_count,
            page_count=row.page_count,
            metadata=row.doc_metadata or {},
            processing_ms=row.processing_ms,
            pages=content.pages if content is not None else None,
            children=(content.children or []) if content is not None else [],
            warnings=(content.warnings or []) if content is not None else [],
            fields=parsed.fields if parsed is not None else None,
            fields_errors=parsed.errors if parsed is not None else None,
        )
    return DocumentOut(
        id=row.id,
        status=row.status,
        title=row.title,
        filename=row.filename,
        source=row.source,
        source_url=row.source_url,
        client_ref=row.client_ref,
        callback_url=row.callback_url,
        duplicate_of=row.duplicate_of,
        metadata=row.user_metadata,
        charset=row.charset,
        sha256=row.sha256,
        size_bytes=row.size_bytes,
        priority=row.priority,
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        created_at=row.created_at,
        updated_at=row.updated_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        next_attempt_at=(
            row.next_attempt_at if row.status == "pending" and row.attempts else None
        ),
        progress=ProgressOut(**row.progress) if row.progress else None,
        error=error,
        result=result,
    )


# The path parameter is read from the match, not declared to FastAPI: its
# per-parameter validation cost a status read as much as the database did.
# Declared here instead, as FastAPI would have declared it.
_DOCUMENT_ID_PARAMETER = {
    "in": "path",
    "name": "document_id",
    "required": True,
    "schema": {"title": "Document Id", "type": "string"},
}


@router.get(
    "/documents/{document_id}",
    response_model=DocumentOut,
    responses={422: {"description": "Validation Error"}},
    openapi_extra={"parameters": [_DOCUMENT_ID_PARAMETER]},
    tags=["documents"],
)
async def get_document(request: Request) -> Response:
    """A document's status, and its result summary once completed."""
    document_id: str = request.path_params["document_id"]
    return _json_answer(await _document_out(request, document_id))


def _json_answer(document: DocumentOut, status_code: int = 200) -> Response:
    """
    The document as JSON.

    Serialised here, once: given the model, FastAPI would validate it again
    against ``response_model`` first, on the API's most frequent requests.
    """
    return Response(
        document.model_dump_json(),
        status_code=status_code,
        media_type="application/json",
    )


async def _result_answer(
    request: Request, document_id: str, media_type: str, markdown: bool
) -> Response:
    services = _services(request)
    row = await _owned_row(request, document_id)
    if row.status != "completed":
        raise Problem(
            409,
            "not-completed",
            f"document {document_id!r} is {row.status}, not completed",
            document_status=row.status,
        )
    body = await services.store.open_result(document_id, markdown=markdown)
    if body is None:
        raise Problem(409, "not-completed", f"document {document_id!r} has no text")
    # Streamed from the database a slice at a time: a whole text held per
    # reader for the length of a slow download is what let 30 readers of
    # one large document take the API past 2 GB.
    return StreamingResponse(
        body.chunks,
        media_type=media_type,
        headers={"Content-Length": str(body.size)},
    )


@router.get(
    "/documents/{document_id}/text",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}}}, 409: {"description": "Not done"}},
    tags=["documents"],
)
async def get_document_text(document_id: str, request: Request) -> Response:
    """The extracted plain text, as UTF-8."""
    return await _result_answer(
        request, document_id, "text/plain; charset=utf-8", markdown=False
    )


@router.get(
    "/documents/{document_id}/markdown",
    response_class=PlainTextResponse,
    responses={
        200: {"content": {"text/markdown": {}}},
        409: {"description": "Not done"},
    },
    tags=["documents"],
)
async def get_document_markdown(document_id: str, request: Request) -> Response:
    """Headings, lists and tables as Markdown; plain text where a format has none."""
    return await _result_answer(
        request, document_id, "text/markdown; charset=utf-8", markdown=True
    )


# `format` and `escape_formulas` are read by ParserHooks, which turns
# `?parser=NAME&format=...` into the parser's export before this route, so
# they are described here by hand: as parameters of the route they would
# also be checked when `parser` is absent, where they have always been
# ignored.
_EXPORT_ALIAS: dict[str, Any] = {
    "parameters": [
        {
            "name": "format",
            "in": "query",
            "required": False,
            "schema": {"type": "string", "enum": ["csv", "jsonl"]},
            "description": "With `parser`: that parser's export in this format "
            "instead of the page of documents, as `GET /parsers/{name}/export` "
            "gives it.",
        },
        {
            "name": "escape_formulas",
            "in": "query",
            "required": False,
            "schema": {"type": "boolean", "default": True},
            "description": "With `parser` and `format`: " + ESCAPE_FORMULAS_DESCRIPTION,
        },
    ],
}


@router.get(
    "/documents",
    response_model=DocumentPage,
    responses={
        200: {"content": {"text/csv": {}, "application/x-ndjson": {}}},
        404: {"description": "With `parser` and `format`: no such parser"},
    },
    openapi_extra=_EXPORT_ALIAS,
    tags=["documents"],
)
async def list_documents(
    request: Request,
    status: Status | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
    mime_type: Annotated[str | None, Query(max_length=200)] = None,
    created_after: datetime | None = None,
    client_ref: Annotated[str | None, Query(max_length=200)] = None,
    q: Annotated[
        str | None,
        Query(max_length=1000, description="Words that must all be in the text."),
    ] = None,
    parser: Annotated[
        str | None,
        Query(
            max_length=200,
            description="Only documents submitted with this parser or parsed "
            "by it since (with `format`, its export instead).",
        ),
    ] = None,
) -> DocumentPage:
    """
    Documents, newest first, a page at a time.

    The cursor is a position in that order, so documents created while you
    page never shift or repeat the pages after it.
    """
    before = _decode_cursor(cursor) if cursor else None
    if q is not None and not q.strip():
        # What an empty search box sends: no search, rather than a search
        # that nothing can match.
        q = None
    # `?parser=` alone is what the export hook lets through as no parser.
    parser = parser or None
    if created_after is not None and created_after.tzinfo is None:
        created_after = created_after.replace(tzinfo=UTC)
    rows = await _services(request).store.list(
        status=status,
        limit=limit,
        before=before,
        mime_type=mime_type,
        created_after=created_after,
        client_ref=client_ref,
        q=q,
        owner=auth.owner(request),
        parser=parser,
    )
    items = [document_from_row(row) for row in rows]
    next_cursor = None
    if len(rows) == limit:
        last = rows[-1]
        next_cursor = _encode_cursor(last.created_at, last.id)
    return DocumentPage(items=items, next_cursor=next_cursor)


def _encode_cursor(created_at: datetime, document_id: str) -> str:
    raw = f"{created_at.isoformat()}|{document_id}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, document_id = raw.split("|", 1)
        created_at = datetime.fromisoformat(created)
        if created_at.tzinfo is None:
            raise ValueError("naive cursor time")
        if not document_id:
            raise ValueError("cursor without an id")
        return created_at, document_id
    except (ValueError, UnicodeDecodeError) as exc:
        message = "not a cursor this API issued"
        error = {"loc": ["query", "cursor"], "msg": message, "type": "value_error"}
        raise Problem(
            422, "validation", f"`cursor`: {message}", errors=[error]
        ) from exc


@router.delete(
    "/documents/{document_id}",
    status_code=204,
    response_class=Response,
    tags=["documents"],
)
async def delete_document(document_id: str, request: Request) -> Response:
    """Remove the document, its result, and its original unless shared."""
    services = _services(request)
    await _owned_row(request, document_id)
    orphaned_key = await services.store.delete(document_id)
    if orphaned_key:
        await services.storage.delete(orphaned_key)
    return Response(status_code=204)


@router.post(
    "/documents/{document_id}/cancel",
    response_model=DocumentOut,
    responses={409: {"description": "Already final"}},
    tags=["documents"],
)
async def cancel_document(document_id: str, request: Request) -> DocumentOut:
    """
    Stop a document. A pending one never starts; a running one is stopped at
    its worker's next lease renewal (within a third of the lease).
    """
    services = _services(request)
    await _owned_row(request, document_id)
    status = await services.store.cancel(document_id)
    if status != "cancelled":
        raise Problem(
            409,
            "already-final",
            f"document {document_id!r} is already {status}",
            document_status=status,
        )
    return await _document_out(request, document_id)


@router.post(
    "/documents/{document_id}/reprocess",
    status_code=202,
    response_model=DocumentOut,
    responses={
        409: {"description": "Not final yet"},
        410: {
            "description": "The stored original is gone (`original-missing`); "
            "the document is left as it was"
        },
        429: {"description": "As many documents are waiting as the queue takes"},
    },
    tags=["documents"],
)
async def reprocess_document(
    document_id: str, request: Request, response: Response
) -> DocumentOut:
    """
    Run a completed, failed or cancelled document again from its stored
    original (after an upgrade, say), with a fresh set of attempts.
    """
    services = _services(request)
    row = await _owned_row(request, document_id)
    # Queued without its original, a completed document would end failed
    # (original_missing) and lose the text it had. One deleted after this
    # check still ends that way; the worker is where that is settled.
    if row.storage_key and not await services.storage.has(row.storage_key):
        raise Problem(
            410,
            "original-missing",
            f"the original of {document_id!r} is gone, so it cannot be "
            "read again; the document is left as it was",
        )
    try:
        status = await services.store.reprocess(document_id)
    except QueueFull as exc:
        raise queue_full(exc.limit, exc.limit) from exc
    if status is not None:
        raise Problem(
            409,
            "not-final",
            f"document {document_id!r} is {status}; only a final document "
            "can be reprocessed",
            document_status=status,
        )
    response.headers["Location"] = f"/documents/{document_id}"
    return await _document_out(request, document_id)


@router.get(
    "/documents/{document_id}/original",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The original's bytes, as the media type detected "
            "when it was processed (application/octet-stream until then)",
            "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
        },
        409: {"description": "Not fetched yet"},
        410: {"description": "The stored original is gone (`original-missing`)"},
    },
    tags=["documents"],
)
async def get_document_original(
    document_id: str, request: Request
) -> StreamingResponse:
    """The stored original, with its detected content type once known."""
    services = _services(request)
    row = await _owned_row(request, document_id)
    if not row.storage_key:
        raise Problem(
            409,
            "original-not-available",
            f"document {document_id!r} has no stored original yet "
            "(its URL is fetched when it is processed)",
        )
    # Open before answering, so a missing original is a 410, not a cut body.
    opened = services.storage.local_copy(row.storage_key)
    try:
        path = await opened.__aenter__()
    except OriginalMissing as exc:
        raise Problem(
            410, "original-missing", f"the original of {document_id!r} is gone"
        ) from exc

    async def chunks() -> AsyncIterator[bytes]:
        try:
            with path.open("rb") as original:
                while chunk := await asyncio.to_thread(original.read, 256 * 1024):
                    yield chunk
        finally:
            await opened.__aexit__(None, None, None)

    headers = {"Content-Length": str(row.size_bytes), **ORIGINAL_HEADERS}
    if row.filename:
        headers["Content-Disposition"] = (
            f"attachment; filename*=UTF-8''{quote(row.filename, safe='')}"
        )
    # Set here rather than as media_type, to which Starlette adds
    # "charset=utf-8" for any text/ type: a cp932 file came labelled UTF-8.
    headers["Content-Type"] = _original_type(row.mime_type, row.doc_metadata)
    return StreamingResponse(chunks(), headers=headers)


def _original_type(mime_type: str | None, metadata: dict[str, Any] | None) -> str:
    """The original's content type: text with the charset it was read in."""
    media = mime_type or "application/octet-stream"
    encoding = (metadata or {}).get("encoding")
    if not media.startswith("text/") or not isinstance(encoding, str):
        return media
    charset = charset_label(encoding)
    return f"{media}; charset={charset}" if charset else media


@router.get("/healthz", response_model=Health, tags=["service"])
async def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={
        503: {
            "model": Readiness,
            "description": "Not ready: the body says which check failed",
        }
    },
    tags=["service"],
)
async def readyz(request: Request, response: Response) -> Readiness:
    """The database answers, its schema is current, and the data directory
    takes writes."""
    services = _services(request)
    database = migrations = False
    try:
        async with services.engine.connect() as connection:
            await connection.execute(sql_text("SELECT 1"))
        database = True
        migrations = await is_current(services.engine)
    except Exception:
        pass
    if services.database_file is not None and not services.database_file.check():
        database = False
    probe = services.data_dir_probe
    storage = probe is None or await probe.check()
    ready = database and migrations and storage
    if not ready:
        response.status_code = 503
    return Readiness(
        status="ready" if ready else "not_ready",
        database=database,
        migrations_current=migrations,
        storage=storage,
    )


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def home() -> HTMLResponse:
    from docmill.api.page import PAGE, PAGE_HEADERS

    return HTMLResponse(PAGE, headers=PAGE_HEADERS)
