"""Parser versions and document fields in SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from docmill.parsing.errors import ParserNotFound
from docmill.parsing.rules import validate_spec
from docmill.parsing.store import ParserStore
from docmill.queue.store import NewDocument

pytestmark = pytest.mark.anyio


def _spec(value: str) -> Any:
    return validate_spec(
        {"name": "p", "fields": {"a": {"rule": "constant", "value": value}}}
    )


async def test_saves_add_versions_and_get_reads_any(store: Any) -> None:
    parsers = ParserStore(store.engine)

    await parsers.save(_spec("1"))
    await parsers.save(_spec("2"))

    newest, first = await parsers.get("p"), await parsers.get("p", 1)
    assert (newest.version, newest.rules["fields"]["a"]["value"]) == (2, "2")
    assert first.rules["fields"]["a"]["value"] == "1"
    assert [(r.name, r.version) for r in await parsers.list()] == [("p", 2)]


async def test_delete_removes_every_version(store: Any) -> None:
    parsers = ParserStore(store.engine)
    await parsers.save(_spec("1"))

    await parsers.delete("p")

    with pytest.raises(ParserNotFound):
        await parsers.get("p")
    with pytest.raises(ParserNotFound):
        await parsers.delete("p")


async def test_fields_replace_the_last_run_and_export_in_order(store: Any) -> None:
    parsers = ParserStore(store.engine)
    ids = []
    for n in range(3):
        ids.append(
            await store.create(
                NewDocument(
                    source="text",
                    sha256="0" * 64,
                    size_bytes=1,
                    storage_key=f"k{n}",
                    filename=f"f{n}.txt",
                )
            )
        )
    for n, document_id in enumerate(ids):
        for run in (1, 2):
            await parsers.save_fields(
                document_id,
                {
                    "parser": "p",
                    "parser_version": run,
                    "fields": {"n": n},
                    "errors": {},
                    "matches": None,
                },
            )

    exported = [row async for row in parsers.export("p", batch=2)]

    assert [(r.id, r.parser_version, r.fields) for r in exported] == [
        (ids[0], 2, {"n": 0}),
        (ids[1], 2, {"n": 1}),
        (ids[2], 2, {"n": 2}),
    ]
    assert (await parsers.get_fields(ids[1])).fields == {"n": 1}


async def test_migration_0007_makes_existing_parsers_shared(database_url: str) -> None:
    """Parsers saved before 0007 are the shared ones afterwards, versions kept."""
    from datetime import UTC, datetime

    from alembic import command
    from sqlalchemy import text

    from docmill.db.engine import create_engine, write_transaction
    from docmill.db.migrate import alembic_config, upgrade

    engine = create_engine(database_url)
    try:
        await upgrade(engine, "0006")
        async with write_transaction(engine) as connection:
            for version in (1, 2):
                await connection.execute(
                    text(
                        "INSERT INTO parsers (name, version, rules, created_at) "
                        "VALUES ('p', :version, :rules, :created_at)"
                    ),
                    {
                        "version": version,
                        "rules": f'{{"name": "p", "fields": {{"v{version}": {{}}}}}}',
                        "created_at": datetime.now(UTC).replace(tzinfo=None),
                    },
                )
        await upgrade(engine)
        parsers = ParserStore(engine)
        seen_by_key = await parsers.get("p", owner="key1")
        own = await parsers.save(_spec("mine"), owner="key1")
        shared = await parsers.list()

        async with write_transaction(engine) as connection:
            await connection.run_sync(
                lambda sync: command.downgrade(alembic_config(sync), "0006")
            )
            left = (
                await connection.execute(text("SELECT name, version FROM parsers"))
            ).all()
    finally:
        await engine.dispose()

    assert (
        seen_by_key.version,
        seen_by_key.shared,
        list(seen_by_key.rules["fields"]),
    ) == (
        2,
        True,
        ["v2"],
    )
    assert (own.name, own.version, own.shared) == ("p", 1, False)
    assert [(r.version, r.shared) for r in shared] == [(2, True)]
    # Going back keeps the shared parsers; a key's own cannot fit the old key.
    assert sorted(tuple(row) for row in left) == [("p", 1), ("p", 2)]
