"""The database: schema, engine and migrations. Statements live in the job store."""

from __future__ import annotations
