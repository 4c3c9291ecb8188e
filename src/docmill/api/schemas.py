"""The request and response bodies of the REST API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

Status = Literal["pending", "processing", "completed", "failed", "cancelled"]


class TextSubmission(BaseModel):
    """Raw text to process, sent as JSON."""

    content: str = Field(description="The document's text.")
    title: str | None = Field(None, max_length=1000)
    metadata: dict[str, Any] | None = Field(
        None, description="Your own key-value data, stored and echoed back."
    )
    priority: int = Field(0, ge=-100, le=100, description="Higher runs sooner.")


class ErrorOut(BaseModel):
    code: str = Field(
        description=(
            "Stable machine-readable reason: empty, corrupt, encrypted, "
            "unsupported_format, limit_exceeded, too_large, timeout, "
            "worker_crash, extraction_failed, original_missing."
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


class DocumentOut(BaseModel):
    id: str
    status: Status
    title: str | None = None
    filename: str | None = None
    source: str = Field(description="How it arrived: upload or text.")
    metadata: dict[str, Any] | None = Field(None, description="Your own metadata.")
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
