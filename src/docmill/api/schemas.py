"""The request and response bodies of the REST API."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

Status = Literal["pending", "processing", "completed", "failed", "cancelled"]


MAX_METADATA_BYTES = 64 * 1024
# Metadata is echoed in every answer and webhook, and pydantic refuses to
# serialise past 255 levels: deeper metadata was stored, then every read of
# its document was a 500. A caller's own data needs far fewer levels.
MAX_METADATA_DEPTH = 64


# The export's `escape_formulas`, described where it is declared
# (/parsers/{name}/export) and on its alias (GET /documents).
ESCAPE_FORMULAS_DESCRIPTION = (
    "CSV: put `'` before a text cell that starts with `=`, `+`, `-`, `@`, "
    "tab or carriage return, so a spreadsheet shows it rather than running "
    "it as a formula."
)


class TextSubmission(BaseModel):
    """Raw text, or a URL for docmill to fetch, sent as JSON."""

    content: str | None = Field(
        None, description="The document's text. Give this or `url`."
    )
    url: str | None = Field(
        None,
        max_length=2000,
        pattern=r"^[hH][tT][tT][pP][sS]?://",
        description=(
            "An http(s) URL the worker fetches before extraction. Private, "
            "loopback and link-local addresses are refused."
        ),
    )
    title: str | None = Field(None, max_length=1000)
    metadata: dict[str, Any] | None = Field(
        None, description="Your own key-value data, stored and echoed back."
    )
    priority: int = Field(0, ge=-100, le=100, description="Higher runs sooner.")
    client_ref: str | None = Field(
        None,
        max_length=200,
        description="Your own reference, filterable and echoed in webhooks.",
    )
    callback_url: str | None = Field(
        None,
        max_length=2000,
        pattern=r"^[hH][tT][tT][pP][sS]?://",
        description="Receives a signed POST when the document completes or fails.",
    )
    dedupe: bool = Field(
        False,
        description=(
            "Reuse the result of a completed document with the same bytes "
            "instead of extracting again."
        ),
    )

    @model_validator(mode="after")
    def _storable(self) -> TextSubmission:
        # PostgreSQL text cannot hold NUL, and metadata is returned with every
        # read of the document, so both are refused here rather than failing
        # (or bloating every answer) later.
        # JSON's \ud800 escapes decode to lone surrogates, which no UTF-8
        # column or answer can hold: accepted, such a document made every
        # later read that included it fail.
        for name in ("content", "title", "client_ref", "url", "callback_url"):
            value = getattr(self, name)
            if value is not None and "\x00" in value:
                raise ValueError(f"`{name}` must not contain NUL characters")
            if value is not None and not _is_unicode(value):
                raise ValueError(f"`{name}` holds a lone surrogate (\\ud800-\\udfff)")
        if self.metadata is not None:
            if _depth(self.metadata) > MAX_METADATA_DEPTH:
                raise ValueError(
                    f"`metadata` is nested deeper than {MAX_METADATA_DEPTH} levels"
                )
            encoded = json.dumps(self.metadata)
            if "\\u0000" in encoded:
                raise ValueError("`metadata` must not contain NUL characters")
            if not _is_unicode(json.dumps(self.metadata, ensure_ascii=False)):
                raise ValueError("`metadata` holds a lone surrogate (\\ud800-\\udfff)")
            if len(encoded) > MAX_METADATA_BYTES:
                raise ValueError(
                    f"`metadata` is larger than {MAX_METADATA_BYTES} bytes as JSON"
                )
        return self


def _depth(value: Any) -> int:
    """How many objects and arrays deep ``value`` goes, without recursing."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        value, level = stack.pop()
        children = value.values() if isinstance(value, dict) else value
        deepest = max(deepest, level)
        stack.extend((c, level + 1) for c in children if isinstance(c, dict | list))
    return deepest


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class BatchSubmission(BaseModel):
    """Many submissions at once, each as `POST /documents` takes it."""

    items: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=100,
        description="Each item is a TextSubmission; an invalid one fails alone.",
    )


class ErrorOut(BaseModel):
    code: str = Field(
        description=(
            "Stable machine-readable reason: empty, corrupt, encrypted, "
            "unsupported_format, limit_exceeded, too_large, timeout, "
            "worker_crash, extraction_failed, fetch_failed, forbidden_address, "
            "original_missing, unstorable_result, cancelled."
        )
    )
    message: str = Field(description="The same, as a sentence for a person.")


class ProgressOut(BaseModel):
    done: int
    total: int
    unit: str


class ChildOut(BaseModel):
    """A document inside this one: a mail attachment or an archive member."""

    name: str
    result: dict[str, Any] | None = None
    error: ErrorOut | None = None


class ResultOut(BaseModel):
    mime_type: str
    word_count: int
    char_count: int
    page_count: int | None = Field(None, description="Set for formats with pages.")
    metadata: dict[str, Any] = Field(
        description="The document's own properties: title, author, created, "
        "language where known, and format facts."
    )
    processing_ms: float
    pages: list[str] | None = Field(None, description="Text of each page.")
    children: list[ChildOut] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    fields: dict[str, Any] | None = Field(
        None, description="With a parser: the fields its rules found."
    )
    fields_errors: dict[str, Any] | None = Field(
        None, description="With a parser: per field, why it is missing or invalid."
    )


class DocumentOut(BaseModel):
    id: str
    status: Status
    title: str | None = None
    filename: str | None = None
    source: str = Field(description="How it arrived: upload, text or url.")
    source_url: str | None = Field(None, description="The URL it was fetched from.")
    client_ref: str | None = Field(None, description="Your own reference.")
    callback_url: str | None = None
    duplicate_of: str | None = Field(
        None, description="With dedupe: the document whose result was reused."
    )
    metadata: dict[str, Any] | None = Field(None, description="Your own metadata.")
    charset: str | None = Field(
        None,
        description=(
            "The charset the upload's `file` part declared in its "
            "Content-Type, as given. Text formats are read in it when the "
            "bytes decode strictly with it (a byte-order mark still wins); "
            "`result.metadata.encoding` says how they were read."
        ),
    )
    sha256: str = Field(description="SHA-256 of the original bytes.")
    size_bytes: int
    priority: int
    attempts: int
    max_attempts: int
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    next_attempt_at: datetime | None = Field(
        None, description="When a retry is due, while one is scheduled."
    )
    progress: ProgressOut | None = None
    error: ErrorOut | None = Field(
        None, description="Why it failed; while pending, why the last try failed."
    )
    result: ResultOut | None = None


class DocumentPage(BaseModel):
    items: list[DocumentOut]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` for the next page; null at the end."
    )


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    database: bool
    migrations_current: bool
    storage: bool = Field(description="The data directory takes writes.")


class BatchItemOut(BaseModel):
    """One item of a batch: its document, or why it was refused."""

    index: int
    status: int = Field(description="The HTTP status this item alone would get.")
    document: DocumentOut | None = None
    error: dict[str, Any] | None = Field(
        None, description="A problem details object, as a single submit returns."
    )


class BatchOut(BaseModel):
    items: list[BatchItemOut]


class DeliveryOut(BaseModel):
    """One webhook event for a document, and how sending it went."""

    number: int
    event: str
    url: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: datetime | None = None
    last_status_code: int | None = None
    last_error: str | None = None
    created_at: datetime
    delivered_at: datetime | None = None
