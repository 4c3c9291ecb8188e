"""
Reading submissions: multipart uploads streamed to storage, and JSON bodies
(``read_body``), each against the same upload deadline.

An upload is never held whole, in memory or on a spool file: each file part
flows from the socket through the multipart parser into ``Storage.put``,
which hashes and writes it as it arrives. The moment a part passes
``DOCMILL_MAX_UPLOAD_BYTES`` the storage gives up, the request stops being
read, and the caller gets 413, without waiting for the rest of the body.

The exception is a small file (up to ``storage.SMALL_BYTES``), where the
storage keeps such originals in the database: its part is held in memory
and written with its document's row, in the same transaction, as small text
submissions are. A file of its own cost a thread, an fsync and a rename per
upload; the commit that makes the document durable now makes its original
durable too. A part that grows past the limit is handed to ``Storage.put``
with what was held so far.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from docmill.api.problems import Problem
from docmill.exceptions import TooLarge, UnknownCharset, UploadTimeout
from docmill.extract.charsets import declared_codec
from docmill.storage import (
    SMALL_BYTES,
    Storage,
    StoredOriginal,
    describe_small,
    small_in_database,
)
from docmill.streams import ChunkPipe

MAX_FIELD_BYTES = 64 * 1024
MAX_FIELDS = 32


@dataclass
class FilePart:
    """One uploaded file: stored, or refused with a problem."""

    filename: str | None
    stored: StoredOriginal | None = None
    error: Problem | None = None
    # A small original's bytes, to be written with its document's row.
    data: bytes | None = None
    # The ``charset`` parameter of the part's Content-Type, a known one.
    charset: str | None = None


# The one part name a submission's file may have (every one of a batch's).
FILE_PART = "file"


@dataclass
class Form:
    files: list[FilePart] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)


class _StreamingForm:
    def __init__(self, storage: Storage, max_bytes: int, max_files: int) -> None:
        self.storage = storage
        self.max_bytes = max_bytes
        self.max_files = max_files
        self.form = Form()
        self.events: list[tuple[str, bytes]] = []
        self._headers: dict[bytes, bytes] = {}
        self._header_field = b""
        self._header_value = b""
        self._field_name: str | None = None
        self._field_value = bytearray()
        self._pipe: ChunkPipe | None = None
        self._reader: asyncio.Task[StoredOriginal] | None = None
        self._part: FilePart | None = None
        # The current file part while it is small enough to keep in memory.
        self._held: bytearray | None = None
        # Past max_bytes a part is streamed, so that storage refuses it at once.
        self.small_limit = (
            min(SMALL_BYTES, max_bytes) if small_in_database(storage, 0) else -1
        )

    def callbacks(self) -> dict[str, Any]:
        def data(name: str) -> Any:
            def on(chunk: bytes, start: int, end: int) -> None:
                self.events.append((name, bytes(chunk[start:end])))

            return on

        def mark(name: str) -> Any:
            return lambda: self.events.append((name, b""))

        return {
            "on_part_begin": mark("part_begin"),
            "on_part_data": data("part_data"),
            "on_part_end": mark("part_end"),
            "on_header_field": data("header_field"),
            "on_header_value": data("header_value"),
            "on_header_end": mark("header_end"),
            "on_headers_finished": mark("headers_finished"),
        }

    async def handle(self, events: list[tuple[str, bytes]]) -> None:
        for name, data in events:
            if name == "part_begin":
                self._headers = {}
                self._header_field = self._header_value = b""
            elif name == "header_field":
                self._header_field += data
            elif name == "header_value":
                self._header_value += data
            elif name == "header_end":
                self._headers[self._header_field.lower()] = self._header_value
                self._header_field = self._header_value = b""
            elif name == "headers_finished":
                self._begin_part()
            elif name == "part_data":
                await self._part_data(data)
            elif name == "part_end":
                await self._end_part()

    def _begin_part(self) -> None:
        _, options = parse_options_header(
            self._headers.get(b"content-disposition", b"")
        )
        name = options.get(b"name", b"").decode("utf-8", "replace")
        # A `file` part is the document even without a filename (curl's
        # -F 'file=<report.txt' sends none), as a JSON text has none: it
        # was read as a form field and the upload refused as having no file.
        if b"filename" not in options and name != FILE_PART:
            if len(self.form.fields) >= MAX_FIELDS:
                raise Problem(422, "validation", "too many form fields")
            self._field_name = name
            self._field_value = bytearray()
            return
        if name != FILE_PART:
            # Any other name had been taken as the document: a `metadata`
            # sent as a file (curl -F metadata=@m.json) was queued in its place.
            raise Problem(
                422,
                "validation",
                f"the document goes in the part named {FILE_PART!r}; "
                f"a file was sent as {name[:40]!r}",
            )
        if len(self.form.files) >= self.max_files:
            raise Problem(
                422, "validation", f"at most {self.max_files} file(s) per request"
            )
        filename = options.get(b"filename", b"").decode("utf-8", "replace") or None
        try:
            charset = declared_charset(self._headers.get(b"content-type", b""))
        except Problem as problem:
            if self.max_files == 1:
                raise
            # In a batch the part fails alone, as an oversized one does, and
            # its bytes are read past unstored: refusing the whole request
            # left the parts before it in storage, owned by no document.
            self._part = FilePart(filename=filename, error=problem)
            return
        self._part = FilePart(filename=filename, charset=charset)
        if self.small_limit >= 0:
            self._held = bytearray()
        else:
            self._stream_part()

    def _stream_part(self) -> None:
        self._pipe = ChunkPipe()
        self._reader = asyncio.ensure_future(
            self.storage.put(self._pipe, self.max_bytes)  # type: ignore[arg-type]
        )

    async def _part_data(self, data: bytes) -> None:
        if self._field_name is not None:
            self._field_value += data
            if len(self._field_value) > MAX_FIELD_BYTES:
                raise Problem(
                    413, "too-large", f"form field {self._field_name!r} is too long"
                )
            return
        if self._held is not None:
            self._held += data
            if len(self._held) <= self.small_limit:
                return
            # Too big to keep: stream it, starting with what was held.
            data, self._held = bytes(self._held), None
            self._stream_part()
        if self._pipe is not None and self._reader is not None:
            await self._pipe.feed(data, self._reader)
            if self._reader.done() and self.max_files == 1:
                # The only file is refused: stop reading the request now.
                await self._end_part()

    async def _end_part(self) -> None:
        if self._field_name is not None:
            self.form.fields[self._field_name] = self._field_value.decode(
                "utf-8", "replace"
            )
            self._field_name = None
            return
        if self._held is not None and self._part is not None:
            part, data = self._part, bytes(self._held)
            self._part = self._held = None
            try:
                part.stored, part.data = describe_small(data, self.max_bytes), data
            except TooLarge as exc:
                part.error = Problem(413, "too-large", exc.message)
            self._finish_part(part)
            return
        if self._part is not None and self._part.error is not None:
            part, self._part = self._part, None
            self._finish_part(part)
            return
        if self._pipe is None or self._reader is None or self._part is None:
            return
        pipe, reader, part = self._pipe, self._reader, self._part
        self._pipe = self._reader = self._part = None
        await pipe.close(reader)
        try:
            part.stored = await reader
        except TooLarge as exc:
            part.error = Problem(413, "too-large", exc.message)
        self._finish_part(part)

    def _finish_part(self, part: FilePart) -> None:
        self.form.files.append(part)
        if part.error is not None and self.max_files == 1:
            raise part.error

    async def abandon(self) -> None:
        if self._pipe is not None and self._reader is not None:
            self._pipe.abort()
            with contextlib.suppress(Exception):
                await self._reader


def declared_charset(content_type: bytes | str) -> str | None:
    """
    The charset a file part's Content-Type declares, if any; checked before
    a byte of the part is stored.

    Raises:
        Problem: 422 for a name that is no text encoding Python knows.
    """
    _, options = parse_options_header(content_type)
    label = options.get(b"charset", b"").decode("latin-1").strip()
    if not label:
        return None
    try:
        declared_codec(label)
    except UnknownCharset as exc:
        raise Problem(
            422,
            "validation",
            f"the `file` part's Content-Type names an {exc}",
            errors=[{"loc": ["file", "charset"], "msg": str(exc), "type": "charset"}],
        ) from exc
    return label


async def read_multipart(
    content_type: str,
    body: AsyncIterator[bytes],
    storage: Storage,
    max_bytes: int,
    max_files: int = 1,
    timeout_seconds: float | None = None,
) -> Form:
    """
    Parse a multipart body, streaming each file part into ``storage``.

    Raises:
        Problem: malformed body, too many parts, or (with ``max_files``
            of 1) a file over ``max_bytes``. With several files an oversized
            one is reported on its ``FilePart`` and the rest still go in.
        UploadTimeout: the body took longer than ``timeout_seconds``.
    """
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise Problem(422, "validation", "the multipart body has no boundary")
    reader = _StreamingForm(storage, max_bytes, max_files)
    parser = MultipartParser(boundary, reader.callbacks())  # type: ignore[arg-type]
    # The whole body runs against one deadline. Storage checked its own per
    # mebibyte written, which a small part (held in memory) never reaches:
    # twenty lines a second apart were accepted under a 2 s limit.
    deadline = asyncio.timeout(timeout_seconds)
    try:
        async with deadline:
            async for chunk in body:
                parser.write(chunk)
                events, reader.events = reader.events, []
                await reader.handle(events)
            parser.finalize()
            events, reader.events = reader.events, []
            await reader.handle(events)
    except TimeoutError as exc:
        await reader.abandon()
        if deadline.expired():
            assert timeout_seconds is not None
            raise UploadTimeout(timeout_seconds) from exc
        raise
    except FormParserError as exc:
        await reader.abandon()
        raise Problem(422, "validation", f"malformed multipart body: {exc}") from exc
    except BaseException:
        await reader.abandon()
        raise
    if (
        reader._field_name is not None
        or reader._pipe is not None
        or reader._held is not None
    ):
        await reader.abandon()
        raise Problem(422, "validation", "the multipart body ended mid-part")
    return reader.form


def fingerprint(*parts: Any) -> str:
    """A stable hash of what a request asked for, for Idempotency-Key checks."""
    encoded = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(encoded).hexdigest()


async def read_body(
    body: AsyncIterator[bytes],
    timeout_seconds: float | None,
    max_bytes: int | None = None,
) -> bytes:
    """
    A whole request body (a JSON submission), read against one deadline.

    A JSON body had no deadline while a multipart one had, so a client could
    hold a request open for as long as it kept sending a byte now and then.

    Raises:
        Problem: 413 when the body passes ``max_bytes`` (a chunked body
            declares no length for the caller to check first).
        UploadTimeout: the body took longer than ``timeout_seconds``.
    """
    chunks: list[bytes] = []
    size = 0
    deadline = asyncio.timeout(timeout_seconds)
    try:
        async with deadline:
            async for chunk in body:
                size += len(chunk)
                if max_bytes is not None and size > max_bytes:
                    raise Problem(
                        413,
                        "too-large",
                        f"the request is larger than the limit of {max_bytes} bytes",
                    )
                chunks.append(chunk)
    except TimeoutError as exc:
        if deadline.expired():
            assert timeout_seconds is not None
            raise UploadTimeout(timeout_seconds) from exc
        raise
    return b"".join(chunks)
