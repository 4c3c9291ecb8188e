"""
The schema, one table per noun.

A ``documents`` row is both the document and its job: status, attempts,
lease and error sit beside the title and the result summary, so claiming work
and reading status touch one row. The extracted text, which can be megabytes,
lives in ``document_contents`` so that listing and claiming never drag it
through the page cache. ``attempts`` keeps one row per try, which is what
lets tests (and operators) prove that no document completed twice.

The search index is no model: its shape differs by database (migrations
0004 and 0006, ``docmill.queue.search``). On SQLite it also gives
``documents`` a ``seq`` column, numbered by a trigger, that only the search
reads; it is not mapped here because PostgreSQL has no such column.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """
    A timestamp that is always UTC and always timezone-aware in Python.

    SQLite has no timezone type; it stores naive UTC text, which still sorts
    and compares correctly because every value is written the same way.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(
        self, value: datetime | None, dialect: Dialect
    ) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(
        self, value: datetime | None, dialect: Dialect
    ) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value


class JobStatus(enum.StrEnum):
    """Where a document is in its life; the values are what the database stores."""

    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON}


class Document(Base):
    __tablename__ = "documents"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    title: Mapped[str | None] = mapped_column(String(1000))
    filename: Mapped[str | None] = mapped_column(String(1000))
    source: Mapped[str] = mapped_column(String(16))
    user_metadata: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    storage_key: Mapped[str] = mapped_column(String(200))

    status: Mapped[str] = mapped_column(String(16))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime]
    lease_expires_at: Mapped[datetime | None]
    worker_id: Mapped[str | None] = mapped_column(String(200))
    claim_token: Mapped[str | None] = mapped_column(String(32))
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)

    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    mime_type: Mapped[str | None] = mapped_column(String(200))
    word_count: Mapped[int | None] = mapped_column(Integer)
    char_count: Mapped[int | None] = mapped_column(BigInteger)
    page_count: Mapped[int | None] = mapped_column(Integer)
    doc_metadata: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    processing_ms: Mapped[float | None] = mapped_column(Float)
    # The parser named at submission, run once the text is extracted.
    parser: Mapped[str | None] = mapped_column(String(200))
    # The caller's own reference, echoed in results and webhooks.
    client_ref: Mapped[str | None] = mapped_column(String(200))
    # The API key that submitted it; a key sees only its own documents.
    owner: Mapped[str | None] = mapped_column(String(32))
    # Submitted by URL: the worker fetches it before extraction.
    source_url: Mapped[str | None] = mapped_column(Text)
    callback_url: Mapped[str | None] = mapped_column(Text)
    # Submitted with dedupe: the completed document whose result was reused.
    duplicate_of: Mapped[str | None] = mapped_column(String(32))
    # The charset the upload's part declared (``text/plain;
    # charset=windows-1253``), as given; text formats are read in it first.
    charset: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_documents_created", "created_at", "id"),
        # Listing one status newest first reads this index in order.
        Index("ix_documents_status_created", "status", "created_at", "id"),
        Index("ix_documents_sha256", "sha256"),
        Index("ix_documents_owner_created", "owner", "created_at", "id"),
        Index("ix_documents_client_ref", "client_ref"),
        # Listing the documents submitted with a parser newest first; those
        # without one (most) have no entry (migration 0010).
        Index(
            "ix_documents_parser_created",
            "parser",
            "created_at",
            "id",
            sqlite_where=text("parser IS NOT NULL"),
            postgresql_where=text("parser IS NOT NULL"),
        ),
    )


# The claim statement walks this index in its own order (highest priority,
# earliest due, then id), so taking the next document reads one index entry
# instead of sorting every pending row. Only pending documents are in it
# (migration 0009), so a document leaves it once, when a slot starts it; the
# statements that use it name the status as a literal, since PostgreSQL's
# generic plan for ``status = $1`` cannot use a partial index. ``status``
# stays its first column: without it SQLite preferred the status listing
# index and a sort.
Index(
    "ix_documents_claim",
    Document.status,
    Document.priority.desc(),
    Document.next_attempt_at,
    Document.id,
    sqlite_where=text("status = 'pending'"),
    postgresql_where=text("status = 'pending'"),
)


class DocumentContent(Base):
    __tablename__ = "document_contents"

    document_id: Mapped[str] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True
    )
    text: Mapped[str] = mapped_column(Text)
    markdown: Mapped[str | None] = mapped_column(Text)
    pages: Mapped[list[str] | None] = mapped_column(JSON)
    children: Mapped[list[Any] | None] = mapped_column(JSON)
    warnings: Mapped[list[str] | None] = mapped_column(JSON)


class Attempt(Base):
    __tablename__ = "attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    document_id: Mapped[str] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    worker_id: Mapped[str] = mapped_column(String(200))
    claim_token: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(16))
    error_code: Mapped[str | None] = mapped_column(String(64))


class Blob(Base):
    """An original stored in the database, for workers that share no disk."""

    __tablename__ = "blobs"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    chunk_count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]


class BlobChunk(Base):
    """
    One piece of a blob.

    Blobs are cut into chunks so that neither writing nor reading one ever
    holds the whole original in memory, on either side of the connection.
    """

    __tablename__ = "blob_chunks"

    # No foreign key: chunks are written under a staging key before the
    # blob's own key (its hash) is known, and renamed when the upload ends.
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Parser(Base):
    """
    One version of a named set of parsing rules.

    Every save adds a version rather than overwriting one, so the fields
    stored for a document always name the exact rules that produced them.
    """

    __tablename__ = "parsers"

    # The key that saved it, or '' for a parser every key shares (saved with
    # auth off, or by the operator's CLI). Not NULL: it is part of the key.
    owner: Mapped[str] = mapped_column(String(64), primary_key=True, default="")
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    description: Mapped[str | None] = mapped_column(Text)
    rules: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]


class DocumentFields(Base):
    """The fields one parser extracted from one document (the latest run)."""

    __tablename__ = "document_fields"

    document_id: Mapped[str] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True
    )
    parser: Mapped[str] = mapped_column(String(200), primary_key=True)
    parser_version: Mapped[int] = mapped_column(Integer)
    fields: Mapped[dict[str, Any]] = mapped_column(JSON)
    errors: Mapped[dict[str, Any]] = mapped_column(JSON)
    matches: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime]
    # The document's own created_at, so that one parser's documents can be
    # read from the index below newest (or oldest) first (migration 0010).
    document_created_at: Mapped[datetime]

    __table_args__ = (
        # A listing by parser and its export walk one parser's runs in
        # their documents' order.
        Index(
            "ix_document_fields_parser_created",
            "parser",
            "document_created_at",
            "document_id",
        ),
    )


class ApiKey(Base):
    """
    A credential for the API, stored as the SHA-256 of its secret.

    The token a caller holds is ``dm_<id>_<secret>``; the id finds the row and
    the secret is compared by hash, so the database never holds a usable key.
    """

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    secret_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class IdempotencyKey(Base):
    """The document a caller's ``Idempotency-Key`` created, per owner."""

    __tablename__ = "idempotency_keys"

    # "" when auth is off: a primary key column cannot be NULL.
    owner: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    document_id: Mapped[str] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE")
    )
    fingerprint: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]


class WebhookDelivery(Base):
    """
    One webhook event in the outbox, and how sending it went.

    Written in the same transaction as the final status it announces, so a
    crash between the two can lose neither; the worker's delivery loop sends
    due rows and records each try.
    """

    __tablename__ = "webhook_deliveries"

    document_id: Mapped[str] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    event: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),)
