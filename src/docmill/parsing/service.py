"""
Running parsers on stored documents: after extraction, on demand, in a dry run.

Where the rules run, and why there:

- A document submitted with ``?parser=NAME`` is parsed by its worker
  between extraction and ``complete``, in a thread (``asyncio.to_thread``),
  while the lease is still renewed: the text is already in the worker's
  memory, the original is still on hand for PDF table geometry, and the
  fields are stored before the document reads as completed. The ``regex``
  module releases the GIL while it matches and gives up after
  ``REGEX_TIMEOUT_SECONDS``, so a bad pattern costs its field an error, never
  the event loop or the document's text.
- The parser name is attached to the document just after it is created,
  under the document row's lock (``assign_parser``). A worker fast enough
  to look before that commit looks again after ``complete``; the API runs
  the parser itself if the assignment finds the document already completed.
  The row lock orders the assignment against ``complete``, so a parser
  always runs at least once; a second run merely rewrites the same fields.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from docmill.db.engine import write_transaction
from docmill.db.models import Document, DocumentContent
from docmill.exceptions import DocumentNotFound, StorageError
from docmill.parsing.engine import PDF_MIME_TYPE, parse_payload
from docmill.parsing.errors import ParserNotFound
from docmill.parsing.store import ParserRecord, ParserStore
from docmill.storage import Storage

logger = logging.getLogger(__name__)


async def run_before_completion(
    engine: AsyncEngine,
    document_id: str,
    payload: dict[str, Any],
    original: Path | bytes,
) -> bool:
    """
    The worker's step between extraction and ``complete``: run and store the
    document's parser, so its fields are there when it reads as completed.

    Returns whether the document has a parser (run, or failed and logged).
    Never raises for a parser's sake: the text must still be stored.
    """
    parsers = ParserStore(engine)
    try:
        request = await _request_for(parsers, document_id)
        if request is None:
            return False
        pdf = original if payload.get("mime_type") == PDF_MIME_TYPE else None
        parsed = await asyncio.to_thread(parse_payload, request, payload, pdf)
        await parsers.save_fields(document_id, parsed)
        _log_parsed(document_id, parsed)
    except Exception:
        logger.exception(
            "parser run failed for document %s",
            document_id,
            extra={"action": "parser_failed", "document_id": document_id},
        )
    return True


async def run_after_completion(
    engine: AsyncEngine,
    storage: Storage,
    document_id: str,
    storage_key: str,
    payload: dict[str, Any],
) -> None:
    """
    Run a parser attached after ``run_before_completion`` looked: the rare
    case of a worker that claimed the document within milliseconds of its
    creation. Logs rather than raises.
    """
    parsers = ParserStore(engine)
    try:
        request = await _request_for(parsers, document_id)
        if request is not None:
            await _run_and_save(
                parsers, storage, document_id, storage_key, request, payload
            )
    except Exception:
        logger.exception(
            "parser run failed for document %s",
            document_id,
            extra={"action": "parser_failed", "document_id": document_id},
        )


async def _request_for(parsers: ParserStore, document_id: str) -> dict[str, Any] | None:
    """
    The document's parse request; None without one to run.

    A parser deleted since the submission is recorded on the document as its
    parser's run, with a ``_parser`` error as a failed run has, so that the
    document says why it has no fields.
    """
    try:
        return await parsers.request_for(document_id)
    except ParserNotFound as exc:
        logger.warning(
            "document %s names parser %s, which no longer exists",
            document_id,
            exc.name,
            extra={"action": "parser_missing", "document_id": document_id},
        )
        await parsers.save_fields(document_id, _missing_parser(exc.name))
        return None


def _missing_parser(name: str) -> dict[str, Any]:
    """The run recorded for parser ``name`` when it no longer exists."""
    return {
        "parser": name,
        # Versions count from 1: none of this parser ran.
        "parser_version": 0,
        "fields": {},
        "matches": {},
        "errors": {
            "_parser": {
                "code": "parser_missing",
                "message": f"parser {name!r} was deleted after the document was "
                "submitted; nothing was parsed",
            }
        },
    }


async def assign_parser(
    engine: AsyncEngine,
    storage: Storage,
    document_id: str,
    name: str,
    owner: str | None = None,
) -> None:
    """
    Attach parser ``name`` to a new document, and run it if the worker was
    faster than this call.
    """
    async with write_transaction(engine) as connection:
        await connection.execute(
            update(Document).where(Document.id == document_id).values(parser=name)
        )
        status = await connection.scalar(
            select(Document.status).where(Document.id == document_id)
        )
    if status == "completed":
        record = await ParserStore(engine).get(name, owner=owner)
        await parse_stored(engine, storage, document_id, record)


async def parse_stored(
    engine: AsyncEngine,
    storage: Storage,
    document_id: str,
    record: ParserRecord,
    *,
    save: bool = True,
) -> dict[str, Any]:
    """
    Run ``record`` over a completed document's stored text.

    Raises:
        DocumentNotFound: no such document.
        ValueError: the document is not completed (its status is the message).
    """
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                select(
                    Document.status,
                    Document.filename,
                    Document.title,
                    Document.user_metadata,
                    Document.storage_key,
                    Document.mime_type,
                    Document.doc_metadata,
                    DocumentContent.text,
                    DocumentContent.pages,
                    DocumentContent.markdown,
                )
                .outerjoin(DocumentContent, DocumentContent.document_id == Document.id)
                .where(Document.id == document_id)
            )
        ).first()
    if row is None:
        raise DocumentNotFound(document_id)
    if row.status != "completed" or row.text is None:
        raise ValueError(row.status)
    payload = {
        "text": row.text,
        "pages": row.pages,
        "markdown": row.markdown,
        "mime_type": row.mime_type,
        "metadata": row.doc_metadata or {},
    }
    request = record.request(
        filename=row.filename, title=row.title, user_metadata=row.user_metadata
    )
    parsers = ParserStore(engine) if save else None
    return await _run_and_save(
        parsers, storage, document_id, row.storage_key, request, payload
    )


async def _run_and_save(
    parsers: ParserStore | None,
    storage: Storage,
    document_id: str,
    storage_key: str,
    request: dict[str, Any],
    payload: dict[str, Any],
) -> dict[str, Any]:
    async with _original(storage, storage_key, payload) as path:
        parsed = await asyncio.to_thread(parse_payload, request, payload, path)
    if parsers is not None:
        await parsers.save_fields(document_id, parsed)
    _log_parsed(document_id, parsed)
    return parsed


def _log_parsed(document_id: str, parsed: dict[str, Any]) -> None:
    logger.info(
        "document %s parsed by %s v%d: %d field(s), %d error(s)",
        document_id,
        parsed["parser"],
        parsed["parser_version"],
        len(parsed["fields"]),
        len(parsed["errors"]),
        extra={"action": "document_parsed", "document_id": document_id},
    )


@contextlib.asynccontextmanager
async def _original(
    storage: Storage, key: str, payload: dict[str, Any]
) -> AsyncIterator[Path | None]:
    path = None
    async with contextlib.AsyncExitStack() as stack:
        # Only PDF tables need the original; every other rule reads the text.
        if payload.get("mime_type") == PDF_MIME_TYPE and key:
            with contextlib.suppress(StorageError):
                path = await stack.enter_async_context(storage.local_copy(key))
        yield path
