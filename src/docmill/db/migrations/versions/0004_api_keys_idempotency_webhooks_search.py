"""api keys, idempotency keys, webhook outbox, client_ref, URLs, full-text search

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from docmill.db.models import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("client_ref", sa.String(200), nullable=True))
        batch_op.add_column(sa.Column("owner", sa.String(32), nullable=True))
        batch_op.add_column(sa.Column("source_url", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("callback_url", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("duplicate_of", sa.String(32), nullable=True))
        batch_op.create_index(
            "ix_documents_owner_created", ["owner", "created_at", "id"]
        )
        batch_op.create_index("ix_documents_client_ref", ["client_ref"])
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("last_used_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("owner", sa.String(32), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("document_id", sa.String(32), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["document_id"], ["documents.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("owner", "key"),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("document_id", sa.String(32), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("delivered_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["document_id"], ["documents.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("document_id", "number"),
    )
    op.create_index(
        "ix_webhook_deliveries_due", "webhook_deliveries", ["status", "next_attempt_at"]
    )
    # The search index is not a model: its shape differs by database. SQLite
    # gets an FTS5 table; PostgreSQL a tsvector column with a GIN index.
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "CREATE VIRTUAL TABLE document_search USING fts5("
            "document_id UNINDEXED, body, tokenize='unicode61 remove_diacritics 2')"
        )
    else:
        op.execute(
            "CREATE TABLE document_search ("
            "document_id VARCHAR(32) PRIMARY KEY "
            "REFERENCES documents(id) ON DELETE CASCADE, "
            "body TSVECTOR NOT NULL)"
        )
        op.execute(
            "CREATE INDEX ix_document_search_body ON document_search USING GIN (body)"
        )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS document_search")
    op.drop_index("ix_webhook_deliveries_due", "webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_table("idempotency_keys")
    op.drop_table("api_keys")
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.drop_index("ix_documents_client_ref")
        batch_op.drop_index("ix_documents_owner_created")
        for column in (
            "duplicate_of",
            "callback_url",
            "source_url",
            "owner",
            "client_ref",
        ):
            batch_op.drop_column(column)
