"""claim index of pending documents only; no lease index

Revision ID: 0009
Revises: 0008

A document moved through the claim index twice on its way to completed
(``pending`` to ``processing`` to ``completed``) and through the lease
index three times (held, started, finished), each move rewriting a page of
the index in the transaction that made it. The claim index now holds only
pending documents: a start takes the entry out and nothing else touches it,
and at a million documents it holds the backlog rather than every document.
The lease index goes: no statement needs it. Recovery looks for started
documents (``status = 'processing'``, a few per worker) and held ones
(pending, with a token), which the status listing index finds by its first
column as well as the lease index did, since a held document's lease could
be missing and the condition covers every pending row either way.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

PENDING_ONLY = sa.text("status = 'pending'")


def upgrade() -> None:
    op.drop_index("ix_documents_lease", table_name="documents")
    op.drop_index("ix_documents_claim", table_name="documents")
    op.create_index(
        "ix_documents_claim",
        "documents",
        ["status", sa.text("priority DESC"), "next_attempt_at", "id"],
        sqlite_where=PENDING_ONLY,
        postgresql_where=PENDING_ONLY,
    )


def downgrade() -> None:
    op.drop_index("ix_documents_claim", table_name="documents")
    op.create_index(
        "ix_documents_claim",
        "documents",
        ["status", sa.text("priority DESC"), "next_attempt_at", "id"],
    )
    op.create_index("ix_documents_lease", "documents", ["status", "lease_expires_at"])
