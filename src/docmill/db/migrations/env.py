"""Alembic environment: runs on the connection docmill hands it."""

from __future__ import annotations

from alembic import context

from docmill.db.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `docmill db upgrade`, not alembic's CLI")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
