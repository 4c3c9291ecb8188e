"""the charset an upload declared, kept with its document

Revision ID: 0011
Revises: 0010

An upload's part may say ``Content-Type: text/plain; charset=windows-1253``.
The declaration was dropped at intake and the text guessed from its bytes,
which short legacy texts defeat. ``documents.charset`` keeps the label as
the client gave it, so that every attempt (and a reprocess) reads the text
formats in it first. Existing documents declared nothing: the column is
NULL for them, and downgrading drops what later uploads declared.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("documents", sa.Column("charset", sa.String(64)))


def downgrade() -> None:
    # Not batch mode: on SQLite it copies ``documents`` to a new table and
    # renames that, which the search view of 0008 makes fail; and dropping
    # the old table, with foreign keys on, deletes what cascades from it.
    # SQLite drops a column in place since 3.35, as PostgreSQL does.
    op.execute("ALTER TABLE documents DROP COLUMN charset")
