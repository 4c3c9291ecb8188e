"""Which database errors are the store's refusal of a write, and which a full disk."""

from __future__ import annotations

import sqlite3

import pytest
from asyncpg.exceptions import DeadlockDetectedError, DiskFullError
from sqlalchemy.exc import DBAPIError, OperationalError

from docmill.db.errors import disk_full, unwritable


def _sqlite_error(*statements: str) -> sqlite3.Error:
    connection = sqlite3.connect(":memory:")
    try:
        for statement in statements:
            connection.execute(statement)
    except sqlite3.Error as exc:
        return exc
    finally:
        connection.close()
    raise AssertionError(f"{statements} raised nothing")


def _sqlite_full() -> sqlite3.Error:
    return _sqlite_error(
        "PRAGMA max_page_count = 2",
        "CREATE TABLE filler (blob)",
        "INSERT INTO filler VALUES (zeroblob(100000))",
    )


def _asyncpg(error: Exception) -> DBAPIError:
    """``error`` as SQLAlchemy's asyncpg dialect raises it."""
    adapted = Exception(str(error))
    adapted.__cause__ = error
    return DBAPIError("COMMIT", {}, adapted)


@pytest.mark.parametrize(
    ("error", "full", "refused"),
    [
        pytest.param(_sqlite_full(), True, True, id="sqlite-writer-full"),
        pytest.param(
            OperationalError("COMMIT", {}, _sqlite_full()),
            True,
            True,
            id="aiosqlite-full",
        ),
        pytest.param(
            _asyncpg(DiskFullError("could not extend file")),
            True,
            True,
            id="postgres-full",
        ),
        pytest.param(
            _asyncpg(DeadlockDetectedError("deadlock detected")),
            False,
            False,
            id="postgres-deadlock",
        ),
        pytest.param(
            _sqlite_error("SELECT * FROM missing"), False, False, id="sqlite-fault"
        ),
        pytest.param(ConnectionRefusedError(111, "refused"), False, True, id="down"),
    ],
)
def test_store_refusals_are_told_from_faults(
    error: BaseException, full: bool, refused: bool
) -> None:
    assert (disk_full(error), unwritable(error)) == (full, refused)
