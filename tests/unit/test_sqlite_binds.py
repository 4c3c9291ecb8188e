"""Values bound by the SQLite writer read as the engine would write them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import bindparam, insert

from docmill.db.engine import _CompiledForSqlite, create_engine
from docmill.db.models import Document


def test_timestamps_of_one_row_convert_each_to_its_own_value() -> None:
    engine = create_engine("sqlite+aiosqlite:///unused.db")
    columns = ["id", "created_at", "updated_at", "next_attempt_at", "user_metadata"]
    statement = insert(Document).values({name: bindparam(name) for name in columns})
    compiled = _CompiledForSqlite(statement, engine.dialect)
    now = datetime(2026, 12, 5, 1, 2, 3, 456789, tzinfo=UTC)
    later = now + timedelta(hours=1)

    bound = dict(
        zip(
            compiled.names,
            compiled.bind(
                {
                    "id": "d1",
                    "created_at": now,
                    "updated_at": now,
                    "next_attempt_at": later.astimezone(timezone(timedelta(hours=2))),
                    "user_metadata": {"a": 1},
                }
            ),
            strict=True,
        )
    )

    assert bound["created_at"] == bound["updated_at"] == "2026-12-05 01:02:03.456789"
    assert bound["next_attempt_at"] == "2026-12-05 02:02:03.456789"
    assert bound["user_metadata"] == '{"a": 1}'


def test_rows_bound_together_read_as_rows_bound_alone() -> None:
    engine = create_engine("sqlite+aiosqlite:///unused.db")
    columns = ["id", "created_at", "updated_at", "user_metadata"]
    statement = insert(Document).values({name: bindparam(name) for name in columns})
    compiled = _CompiledForSqlite(statement, engine.dialect)
    now = datetime(2026, 12, 5, 1, 2, 3, 456789, tzinfo=UTC)
    rows = [
        {"id": "d1", "created_at": now, "updated_at": now, "user_metadata": None},
        {
            "id": "d2",
            "created_at": now,
            "updated_at": now + timedelta(seconds=1),
            "user_metadata": {"a": 1},
        },
        {"id": "d3", "created_at": now, "updated_at": now, "user_metadata": None},
    ]

    assert compiled.bind_all(rows) == [compiled.bind(row) for row in rows]


def test_a_value_shared_by_rows_converts_once() -> None:
    engine = create_engine("sqlite+aiosqlite:///unused.db")
    statement = insert(Document).values(
        {name: bindparam(name) for name in ["id", "created_at"]}
    )
    compiled = _CompiledForSqlite(statement, engine.dialect)
    calls: list[datetime] = []
    [(index, convert, kind)] = compiled.conversions

    def counting(value: datetime) -> object:
        calls.append(value)
        return convert(value)

    compiled.conversions = [(index, counting, kind)]
    now = datetime(2026, 12, 5, tzinfo=UTC)

    compiled.bind_all([{"id": f"d{n}", "created_at": now} for n in range(5)])

    assert calls == [now]
