"""The resources: documents, their text, and the service's health."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, PlainTextResponse
from pydantic import ValidationError
from sqlalchemy import text as sql_text
from starlette.datastructures import UploadFile

from docmill.api.app import Services
from docmill.api.problems import Problem
from docmill.api.schemas import (
    DocumentOut,
    DocumentPage,
    ErrorOut,
    Health,
    ProgressOut,
    Readiness,
    ResultOut,
    Status,
    TextSubmission,
)
from docmill.db.migrate import is_current
from docmill.queue.store import NewDocument
from docmill.storage import put_bytes

router = APIRouter()

_SUBMIT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "title": {"type": "string"},
                        "metadata": {
                            "type": "string",
                            "description": "A JSON object, as text.",
                        },
                        "priority": {"type": "integer"},
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
    responses={413: {"description": "Too large"}, 422: {"description": "Invalid"}},
    tags=["documents"],
)
async def submit_document(request: Request, response: Response) -> DocumentOut:
    """
    Queue a document: a multipart file upload, or raw text as JSON.

    Answers at once, before extraction; poll the `Location` for the result.
    """
    services = _services(request)
    settings = services.settings
    declared = request.headers.get("content-length")
    if (
        declared
        and declared.isdigit()
        and int(declared) > settings.max_upload_bytes + 65536
    ):
        raise Problem(
            413,
            "too-large",
            "the request is larger than the limit of "
            f"{settings.max_upload_bytes} bytes",
        )
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        new = await _accept_upload(request, services)
    elif content_type.startswith("application/json"):
        new = await _accept_text(request, services)
    else:
        raise Problem(
            415,
            "unsupported-media-type",
            "send a multipart/form-data upload with a `file` field, or JSON "
            "with a `content` field",
        )
    document_id = await services.store.create(new)
    response.headers["Location"] = f"/documents/{document_id}"
    return await _document_out(services, document_id)


async def _accept_upload(request: Request, services: Services) -> NewDocument:
    async with request.form(max_files=1, max_fields=16) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise Problem(422, "validation", "the upload has no `file` part")
        title = _form_text(form.get("title"))
        metadata = _parse_metadata(_form_text(form.get("metadata")))
        priority = _parse_priority(_form_text(form.get("priority")))
        stored = await services.storage.put(
            upload.file, services.settings.max_upload_bytes
        )
    return NewDocument(
        source="upload",
        sha256=stored.sha256,
        size_bytes=stored.size_bytes,
        storage_key=stored.key,
        title=title,
        filename=upload.filename,
        user_metadata=metadata,
        priority=priority,
    )


async def _accept_text(request: Request, services: Services) -> NewDocument:
    try:
        submission = TextSubmission.model_validate_json(await request.body())
    except ValidationError as exc:
        errors = [
            {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
            for e in exc.errors()
        ]
        raise Problem(
            422, "validation", "the JSON body is not valid", errors=errors
        ) from exc
    stored = await put_bytes(
        services.storage,
        submission.content.encode("utf-8"),
        services.settings.max_upload_bytes,
    )
    return NewDocument(
        source="text",
        sha256=stored.sha256,
        size_bytes=stored.size_bytes,
        storage_key=stored.key,
        title=submission.title,
        user_metadata=submission.metadata,
        priority=submission.priority,
    )


def _form_text(value: Any) -> str | None:
    return value if isinstance(value, str) and value != "" else None


def _parse_metadata(raw: str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise Problem(422, "validation", "`metadata` is not valid JSON") from exc
    if not isinstance(value, dict):
        raise Problem(422, "validation", "`metadata` must be a JSON object")
    return value


def _parse_priority(raw: str | None) -> int:
    if raw is None:
        return 0
    try:
        priority = int(raw)
    except ValueError as exc:
        raise Problem(422, "validation", "`priority` must be an integer") from exc
    if not -100 <= priority <= 100:
        raise Problem(422, "validation", "`priority` must be between -100 and 100")
    return priority


async def _document_out(services: Services, document_id: str) -> DocumentOut:
    row = await services.store.get(document_id)
    content = None
    if row.status == "completed":
        content = await services.store.get_content(document_id)
    return document_from_row(row, content)


def document_from_row(row: Any, content: Any = None) -> DocumentOut:
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
        )
    return DocumentOut(
        id=row.id,
        status=row.status,
        title=row.title,
        filename=row.filename,
        source=row.source,
        metadata=row.user_metadata,
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


@router.get("/documents/{document_id}", response_model=DocumentOut, tags=["documents"])
async def get_document(document_id: str, request: Request) -> DocumentOut:
    """A document's status, and its result summary once completed."""
    return await _document_out(_services(request), document_id)


async def _completed_content(services: Services, document_id: str) -> Any:
    row = await services.store.get(document_id)
    if row.status != "completed":
        raise Problem(
            409,
            "not-completed",
            f"document {document_id!r} is {row.status}, not completed",
            document_status=row.status,
        )
    content = await services.store.get_content(document_id)
    if content is None:
        raise Problem(409, "not-completed", f"document {document_id!r} has no text")
    return content


@router.get(
    "/documents/{document_id}/text",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}}}, 409: {"description": "Not done"}},
    tags=["documents"],
)
async def get_document_text(document_id: str, request: Request) -> PlainTextResponse:
    """The extracted plain text, as UTF-8."""
    content = await _completed_content(_services(request), document_id)
    return PlainTextResponse(content.text, media_type="text/plain; charset=utf-8")


@router.get(
    "/documents/{document_id}/markdown",
    response_class=PlainTextResponse,
    responses={
        200: {"content": {"text/markdown": {}}},
        409: {"description": "Not done"},
    },
    tags=["documents"],
)
async def get_document_markdown(
    document_id: str, request: Request
) -> PlainTextResponse:
    """Headings, lists and tables as Markdown; plain text where a format has none."""
    content = await _completed_content(_services(request), document_id)
    return PlainTextResponse(
        content.markdown if content.markdown is not None else content.text,
        media_type="text/markdown; charset=utf-8",
    )


@router.get("/documents", response_model=DocumentPage, tags=["documents"])
async def list_documents(
    request: Request,
    status: Status | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> DocumentPage:
    """Documents, newest first, a page at a time."""
    before = _decode_cursor(cursor) if cursor else None
    rows = await _services(request).store.list(
        status=status, limit=limit, before=before
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
        return datetime.fromisoformat(created), document_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise Problem(422, "validation", "`cursor` is not one this API issued") from exc


@router.delete(
    "/documents/{document_id}",
    status_code=204,
    response_class=Response,
    tags=["documents"],
)
async def delete_document(document_id: str, request: Request) -> Response:
    """Remove the document, its result, and its original unless shared."""
    services = _services(request)
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
    status = await services.store.cancel(document_id)
    if status != "cancelled":
        raise Problem(
            409,
            "already-final",
            f"document {document_id!r} is already {status}",
            document_status=status,
        )
    return await _document_out(services, document_id)


@router.get("/healthz", response_model=Health, tags=["service"])
async def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness}},
    tags=["service"],
)
async def readyz(request: Request, response: Response) -> Readiness:
    """The database answers and its schema is current."""
    services = _services(request)
    database = migrations = False
    try:
        async with services.engine.connect() as connection:
            await connection.execute(sql_text("SELECT 1"))
        database = True
        migrations = await is_current(services.engine)
    except Exception:
        pass
    ready = database and migrations
    if not ready:
        response.status_code = 503
    return Readiness(
        status="ready" if ready else "not_ready",
        database=database,
        migrations_current=migrations,
    )


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def home() -> HTMLResponse:
    from docmill.api.page import PAGE

    return HTMLResponse(PAGE)
