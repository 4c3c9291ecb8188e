"""claim index in the claim's own order; status listing index

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.drop_index("ix_documents_claim")
        batch_op.create_index(
            "ix_documents_claim",
            ["status", sa.text("priority DESC"), "next_attempt_at", "id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_documents_status_created", ["status", "created_at", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.drop_index("ix_documents_status_created")
        batch_op.drop_index("ix_documents_claim")
        batch_op.create_index(
            "ix_documents_claim",
            ["status", "priority", "next_attempt_at"],
            unique=False,
        )
