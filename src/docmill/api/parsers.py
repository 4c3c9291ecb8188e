"""
The parsing-rules resources: parsers, dry runs, document fields, export.

``ParserHooks`` is the one piece outside the router: an ASGI middleware that
attaches ``?parser=NAME`` to a document as ``POST /documents`` creates it,
and serves ``GET /documents?parser=NAME&format=csv|jsonl`` by routing it to
``/parsers/{name}/export``. It lets parsing ride on the submission and
listing endpoints without reaching into how they read their bodies.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import tempfile
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.datastructures import UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from docmill.api import auth
from docmill.api.auth import GuardedRoute
from docmill.api.intake import declared_charset, read_body
from docmill.api.problems import Problem, load_json, problem_response
from docmill.api.schemas import ESCAPE_FORMULAS_DESCRIPTION
from docmill.exceptions import DocumentNotFound, ExtractionError, echoed
from docmill.parsing.engine import parse_payload
from docmill.parsing.errors import ParserExists, ParserNotFound
from docmill.parsing.rules import NAME_PATTERN, ParserSpec, validation_errors
from docmill.parsing.service import assign_parser, parse_stored
from docmill.parsing.store import ParserRecord, ParserStore

logger = logging.getLogger(__name__)

router = APIRouter(tags=["parsers"], route_class=GuardedRoute)

_DOCUMENT_PATH = re.compile(r"/documents/([^/?]+)$")


class ParserOut(BaseModel):
    """One stored version of a parser."""

    name: str
    version: int = Field(description="Bumped by every save; older ones are kept.")
    description: str | None = None
    rules: dict[str, Any] = Field(description="The rules file, as validated.")
    created_at: datetime
    shared: bool = Field(
        False,
        description="Saved by the operator's CLI or with auth off: every key "
        "may use it, no key may change it. A key's own parser of the same "
        "name hides it from that key.",
    )


class ParserList(BaseModel):
    items: list[ParserOut]


class ParseOut(BaseModel):
    """What a parser found in one document."""

    document_id: str | None = None
    parser: str
    parser_version: int = Field(
        description="The version that ran; 0 when the parser was deleted before "
        "it could run (`fields_errors._parser` says so)."
    )
    fields: dict[str, Any]
    fields_errors: dict[str, Any] = Field(
        description="Per field: code (missing, invalid, timeout) and message; "
        "`_parser` for the run as a whole (parser_failed, parser_missing)."
    )
    matches: dict[str, Any] | None = Field(
        None,
        description="Per field: page, start and end (character offsets in the "
        "text) and the matched text; for tables, pages and row count.",
    )


class DryRun(BaseModel):
    document_id: str = Field(description="A completed document to run against.")


def _parsers(request: Request) -> ParserStore:
    return ParserStore(request.app.state.services.engine)


def _out(record: ParserRecord) -> ParserOut:
    return ParserOut(
        name=record.name,
        version=record.version,
        description=record.description,
        rules=record.rules,
        created_at=record.created_at,
        shared=record.shared,
    )


def _parse_out(parsed: dict[str, Any], document_id: str | None) -> ParseOut:
    return ParseOut(
        document_id=document_id,
        parser=parsed["parser"],
        parser_version=parsed["parser_version"],
        fields=parsed["fields"],
        fields_errors=parsed["errors"],
        matches=parsed.get("matches"),
    )


def _invalid(errors: list[dict[str, Any]]) -> Problem:
    first = errors[0]
    return Problem(
        422,
        "invalid-rules",
        f"{first['path'] or 'the rules'}: {first['message']}",
        errors=errors,
    )


# Rules and dry-run requests are small JSON; read whole, they were read with
# no limit and no deadline.
SMALL_BODY_BYTES = 1024 * 1024


async def _small_body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > SMALL_BODY_BYTES:
        raise Problem(
            413,
            "too-large",
            f"the request is larger than the limit of {SMALL_BODY_BYTES} bytes",
        )
    timeout = request.app.state.services.settings.upload_timeout_seconds
    return await read_body(request.stream(), timeout, SMALL_BODY_BYTES)


async def _spec(request: Request, name: str | None = None) -> ParserSpec:
    data = load_json(await _small_body(request), "the body", "invalid-rules")
    if (
        name is not None
        and isinstance(data, dict)
        and data.setdefault("name", name) != name
    ):
        raise _invalid([{"path": "name", "message": f"must be {name!r}"}])
    try:
        return ParserSpec.model_validate(data)
    except ValidationError as exc:
        raise _invalid(validation_errors(exc)) from exc


async def _get(request: Request, name: str, version: int | None = None) -> ParserRecord:
    try:
        return await _parsers(request).get(name, version, owner=auth.owner(request))
    except ParserNotFound as exc:
        named: dict[str, Any] = {} if echoed(name) is None else {"parser": name}
        raise Problem(404, "parser-not-found", str(exc), **named) from exc


_RULES_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/ParserSpec"}}
        },
    }
}


@router.post(
    "/parsers",
    status_code=201,
    response_model=ParserOut,
    openapi_extra=_RULES_BODY,
    responses={409: {"description": "Exists"}, 422: {"description": "Invalid"}},
)
async def create_parser(request: Request, response: Response) -> ParserOut:
    """Create a parser (version 1). Rule errors answer 422 naming the rule."""
    spec = await _spec(request)
    try:
        record = await _parsers(request).save(
            spec, owner=auth.owner(request), create=True
        )
    except ParserExists as exc:
        raise Problem(
            409,
            "parser-exists",
            f"parser {spec.name!r} exists; "
            f"PUT /parsers/{spec.name} saves a new version",
        ) from exc
    response.headers["Location"] = f"/parsers/{record.name}"
    return _out(record)


@router.put(
    "/parsers/{name}",
    response_model=ParserOut,
    openapi_extra=_RULES_BODY,
    responses={422: {"description": "Invalid"}},
)
async def put_parser(name: str, request: Request) -> ParserOut:
    """
    Save the rules as the next version of `name` (creating it if new). With
    API keys, the parser is the calling key's own; a shared parser of the
    same name stays as it is, hidden from this key.
    """
    if not re.match(NAME_PATTERN, name):
        raise _invalid([{"path": "name", "message": f"{name!r} is not a valid name"}])
    spec = await _spec(request, name)
    return _out(await _parsers(request).save(spec, owner=auth.owner(request)))


@router.get("/parsers", response_model=ParserList)
async def list_parsers(request: Request) -> ParserList:
    """Every parser the caller may use (its own and the shared ones), newest
    version of each."""
    records = await _parsers(request).list(owner=auth.owner(request))
    return ParserList(items=[_out(r) for r in records])


@router.get("/parsers/{name}", response_model=ParserOut)
async def get_parser(
    name: str,
    request: Request,
    # Versions are stored as 32-bit integers on PostgreSQL.
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> ParserOut:
    """The newest version of a parser, or `?version=N`."""
    return _out(await _get(request, name, version))


@router.delete(
    "/parsers/{name}",
    status_code=204,
    response_class=Response,
    responses={403: {"description": "Shared"}},
)
async def delete_parser(name: str, request: Request) -> Response:
    """Remove every version; fields already extracted stay with their documents."""
    owner = auth.owner(request)
    try:
        await _parsers(request).delete(name, owner=owner)
    except ParserNotFound as exc:
        # The caller may still see a shared parser of that name, which only
        # the operator can remove.
        await _get(request, name)
        raise Problem(
            403,
            "parser-shared",
            f"parser {name!r} is shared; only the operator can delete it",
            parser=name,
        ) from exc
    return Response(status_code=204)


@router.post(
    "/parsers/{name}/test",
    response_model=ParseOut,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/DryRun"}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "file": {
                                "type": "string",
                                "format": "binary",
                                "description": "A `charset` in its Content-Type "
                                "is read as in `POST /documents`.",
                            }
                        },
                    }
                },
            },
        }
    },
)
async def test_parser(name: str, request: Request) -> ParseOut:
    """
    Dry run: the fields, errors and match positions for a completed document
    (`{"document_id": ...}`) or an uploaded file; nothing is stored.
    """
    record = await _get(request, name)
    services = request.app.state.services
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        return await _test_upload(request, record)
    try:
        dry = DryRun.model_validate_json(await _small_body(request))
    except ValidationError as exc:
        raise Problem(422, "validation", 'send {"document_id": ...} or a file') from exc
    await _visible(request, dry.document_id)
    parsed = await _parse_stored(services, dry.document_id, record, save=False)
    return _parse_out(parsed, dry.document_id)


async def _test_upload(request: Request, record: ParserRecord) -> ParseOut:
    import asyncio

    from docmill.extract.child import ExtractionChild

    settings = request.app.state.services.settings
    async with request.form(max_files=1, max_fields=4) as form:
        upload = form.get("file")
        if isinstance(upload, str):
            # Read as text by Starlette, its bytes are no longer the file's.
            raise Problem(
                422,
                "validation",
                "the `file` part has no filename, so it arrived as a text "
                "field: send it as a file (curl -F file=@report.pdf)",
            )
        if not isinstance(upload, UploadFile):
            raise Problem(422, "validation", "the upload has no `file` part")
        charset = declared_charset(upload.headers.get("content-type", ""))
        with tempfile.TemporaryDirectory(prefix="docmill-test-") as scratch:
            path = Path(scratch) / "original"
            with path.open("wb") as out:
                while chunk := await upload.read(1 << 20):
                    out.write(chunk)
            # Extraction of an upload is untrusted work: the same killable
            # child process and limits as the workers use.
            child = ExtractionChild(
                settings.extraction_limits(),
                settings.job_memory_mb,
                settings.extractor_plugins,
            )
            try:
                payload = await child.extract(
                    path,
                    upload.filename,
                    settings.job_timeout_seconds,
                    charset=charset,
                )
            except ExtractionError as exc:
                raise Problem(
                    422, "unreadable", exc.message, error_code=exc.code
                ) from exc
            finally:
                child.close()
            parsed = await asyncio.to_thread(
                parse_payload,
                record.request(filename=upload.filename),
                payload,
                path,
            )
    return _parse_out(parsed, None)


async def _visible(request: Request, document_id: str) -> None:
    """DocumentNotFound unless the caller's key may see the document."""
    # Parsers are shared by every key, but a document is its owner's alone:
    # a parser run over another key's document would hand its text over.
    row = await request.app.state.services.store.get(document_id)
    owner = auth.owner(request)
    if owner is not None and row.owner != owner:
        raise DocumentNotFound(document_id)


async def _parse_stored(
    services: Any, document_id: str, record: ParserRecord, save: bool
) -> dict[str, Any]:
    try:
        return await parse_stored(
            services.engine, services.storage, document_id, record, save=save
        )
    except ValueError as exc:
        raise Problem(
            409,
            "not-completed",
            f"document {document_id!r} is {exc}, not completed",
            document_status=str(exc),
        ) from exc


@router.post("/documents/{document_id}/parse", response_model=ParseOut)
async def parse_document(
    document_id: str, request: Request, parser: str = Query(...)
) -> ParseOut:
    """Run a parser over a completed document now, and store its fields."""
    record = await _get(request, parser)
    await _visible(request, document_id)
    services = request.app.state.services
    parsed = await _parse_stored(services, document_id, record, save=True)
    return _parse_out(parsed, document_id)


@router.get(
    "/documents/{document_id}/fields",
    response_model=ParseOut,
    responses={404: {"description": "Not parsed"}},
)
async def get_fields(
    document_id: str, request: Request, parser: str | None = None
) -> ParseOut:
    """The fields of the newest parser run on a document (or of `?parser=`)."""
    await _visible(request, document_id)  # 404 for an unknown document too
    row = await _parsers(request).get_fields(document_id, parser)
    if row is None:
        raise Problem(
            404, "fields-not-found", f"document {document_id!r} has not been parsed"
        )
    return ParseOut(
        document_id=document_id,
        parser=row.parser,
        parser_version=row.parser_version,
        fields=row.fields,
        fields_errors=row.errors,
        matches=row.matches,
    )


@router.get(
    "/parsers/{name}/export",
    responses={
        200: {"content": {"text/csv": {}, "application/x-ndjson": {}}},
    },
)
async def export_fields(
    name: str,
    request: Request,
    format: Literal["csv", "jsonl"] = "jsonl",
    escape_formulas: bool = Query(True, description=ESCAPE_FORMULAS_DESCRIPTION),
) -> StreamingResponse:
    """
    One row per document parsed by `name`, streamed; also served at
    `GET /documents?parser=NAME&format=csv|jsonl`.

    CSV has one column per field (tables and other nested values as JSON
    text) plus `document_id`, `filename`, `parser_version` and
    `fields_errors`; text that a spreadsheet would read as a formula gets a
    leading `'` unless `escape_formulas=false`. JSON Lines has one object
    per document, with the values as they are.
    """
    record = await _get(request, name)
    parsers = _parsers(request)
    columns = list(record.rules.get("fields", {}))
    rows = parsers.export(name, owner=auth.owner(request))
    if format == "jsonl":
        body = _jsonl(rows)
        media = "application/x-ndjson"
    else:
        body = _csv(rows, columns, escape_formulas)
        media = "text/csv; charset=utf-8"
    disposition = f"attachment; filename*=UTF-8''{quote(name)}.{format}"
    return StreamingResponse(
        body, media_type=media, headers={"Content-Disposition": disposition}
    )


async def _jsonl(rows: AsyncIterator[Any]) -> AsyncIterator[bytes]:
    async for row in rows:
        line = {
            "document_id": row.id,
            "filename": row.filename,
            "parser_version": row.parser_version,
            "fields": row.fields,
            "fields_errors": row.errors,
        }
        yield (json.dumps(line, ensure_ascii=False) + "\n").encode()


async def _csv(
    rows: AsyncIterator[Any], columns: list[str], escape_formulas: bool = True
) -> AsyncIterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    cell = _inert_cell if escape_formulas else _cell
    header = ["document_id", "filename", "parser_version", *columns, "fields_errors"]
    writer.writerow([cell(name) for name in header])
    async for row in rows:
        values = [cell(row.fields.get(column)) for column in columns]
        errors = json.dumps(row.errors, ensure_ascii=False) if row.errors else ""
        writer.writerow(
            [row.id, cell(row.filename), row.parser_version, *values, errors]
        )
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():  # no rows: the header alone
        yield buffer.getvalue().encode()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


# What a spreadsheet may take for the start of a formula (OWASP's list).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# A signed number alone calls nothing, and decimal fields are text ("-12.50").
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(?:[.,][0-9]+)?(?:[eE][+-]?[0-9]+)?")


def _inert_cell(value: Any) -> str:
    """
    ``value`` as a cell no spreadsheet runs: text from a document (a field,
    a file name) can be ``=HYPERLINK(...)``. Signed numbers stay as they
    are, so a refund of -12.50 still sums.
    """
    text = _cell(value)
    if text.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


class ParserHooks:
    """
    Parsing on the documents endpoints: ``POST /documents?parser=NAME`` and
    ``GET /documents?parser=NAME&format=csv|jsonl``.

    Args:
        app: the application it wraps.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].rstrip("/") != "/documents":
            await self.app(scope, receive, send)
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        parser = (query.get("parser") or [""])[0]
        if not parser:
            await self.app(scope, receive, send)
            return
        if scope["method"] == "GET" and "format" in query:
            path = f"/parsers/{quote(parser, safe='')}/export"
            scope = dict(scope, path=path, raw_path=path.encode())
            await self.app(scope, receive, send)
        elif scope["method"] == "POST":
            await self._submit(scope, receive, send, parser)
        else:
            await self.app(scope, receive, send)

    async def _submit(
        self, scope: Scope, receive: Receive, send: Send, parser: str
    ) -> None:
        from starlette.requests import Request as StarletteRequest

        services = scope["app"].state.services
        owner = await _caller(scope, services)
        try:
            await ParserStore(services.engine).get(parser, owner=owner)
        except ParserNotFound as exc:
            response = problem_response(
                StarletteRequest(scope),
                422,
                "validation",
                str(exc),
                errors=[
                    {"loc": ["query", "parser"], "msg": str(exc), "type": "value_error"}
                ],
            )
            await response(scope, receive, send)
            return

        async def send_after_assigning(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] < 300:
                headers = dict(message.get("headers") or [])
                match = _DOCUMENT_PATH.search(headers.get(b"location", b"").decode())
                if match:
                    # Before the client hears of the document, so the parser
                    # is attached by the time anyone can read it.
                    await assign_parser(
                        services.engine, services.storage, match[1], parser, owner
                    )
            await send(message)

        await self.app(scope, receive, send_after_assigning)


async def _caller(scope: Scope, services: Any) -> str | None:
    """
    The key a submission comes from, ahead of the route's own check, so the
    parser is looked up among those the key may use. An unknown or missing
    key passes as None here: the route then answers 401 and creates nothing.
    """
    if not services.settings.auth_required:
        return None
    from starlette.datastructures import Headers

    token = auth.bearer_token(Headers(scope=scope).get("authorization"))
    if token is None:
        return None
    key_id: str | None = await services.keys.verify(token)
    return key_id
