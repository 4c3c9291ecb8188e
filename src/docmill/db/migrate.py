"""Alembic, driven from code so users never need an alembic.ini."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from docmill.db.engine import write_transaction

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema to ``revision``."""

    def _upgrade(connection: Connection) -> None:
        command.upgrade(alembic_config(connection), revision)

    # A write transaction, so SQLite runs the migration as one BEGIN IMMEDIATE
    # transaction (plain connections there run in autocommit).
    async with write_transaction(engine) as connection:
        await connection.run_sync(_upgrade)


async def current_revisions(engine: AsyncEngine) -> list[str]:
    """The revisions the database is at; empty when it has no schema yet."""

    def _read(connection: Connection) -> list[str]:
        return sorted(MigrationContext.configure(connection).get_current_heads())

    async with engine.connect() as connection:
        return await connection.run_sync(_read)


async def is_current(engine: AsyncEngine) -> bool:
    """Whether the database is at the newest revision this code knows."""

    def _check(connection: Connection) -> bool:
        context = MigrationContext.configure(connection)
        heads = ScriptDirectory.from_config(alembic_config()).get_heads()
        return set(context.get_current_heads()) == set(heads)

    async with engine.connect() as connection:
        return await connection.run_sync(_check)
