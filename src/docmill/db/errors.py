"""Telling a database that cannot be had from a fault in docmill."""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError


def unavailable(error: BaseException) -> bool:
    """
    Whether ``error`` says the database cannot be had just now: unreachable,
    the connection dropped, or the server refusing one more (too many
    clients, still starting, not accepting connections to this database,
    no such database, the role or its password refused).
    Such errors pass once the database is back;
    anything else is a fault to report whole.
    """
    if isinstance(error, OperationalError | InterfaceError | ConnectionError):
        return True
    if isinstance(error, TimeoutError):
        return True
    if isinstance(error, DBAPIError):
        return bool(error.connection_invalidated) or lost_connection(error.orig)
    return lost_connection(error)


def lost_connection(error: BaseException | None) -> bool:
    """
    Whether ``error``, or what caused it, is asyncpg saying the connection
    is gone or could not be had.
    """
    try:
        import asyncpg
        from asyncpg import exceptions as pg
    except ImportError:  # SQLite only: no such errors
        return False
    gone = (
        asyncpg.InterfaceError,
        asyncpg.InternalClientError,
        pg.PostgresConnectionError,
        pg.AdminShutdownError,
        pg.TooManyConnectionsError,
        pg.CannotConnectNowError,
        # Refusals at connect time that an operator mends (the database
        # dropped or not yet created, the role or its password refused):
        # the same 503 and one-line warning, not a 500 and a traceback on
        # every poll of every background task.
        pg.InvalidCatalogNameError,
        pg.InvalidAuthorizationSpecificationError,
        pg.InvalidPasswordError,
    )
    while error is not None:
        if isinstance(error, gone) or _refused_database(error, pg):
            return True
        error = error.__cause__
    return False


def _refused_database(error: BaseException, pg: Any) -> bool:
    """
    ``ALTER DATABASE ... ALLOW_CONNECTIONS false``: SQLSTATE 55000, which
    PostgreSQL also gives a statement run in the wrong state (a fault to
    report). The refusal comes at connect time with severity FATAL, which
    ends a session; a statement's 55000 is an ERROR. ``severity_en`` is not
    translated; the message, kept as a fallback for a server too old to send
    it, is, so there a localised server's refusal stays a 500.
    """
    if not isinstance(error, pg.ObjectNotInPrerequisiteStateError):
        return False
    severity = getattr(error, "severity_en", None)
    if severity is not None:
        return bool(severity == "FATAL")
    return "not currently accepting connections" in str(error)


# SQLite's primary result codes that say the file cannot take a write just
# now (busy or locked past the timeout, a failing or full disk, a file that
# cannot be opened), not that docmill asked for something wrong.
_SQLITE_REFUSALS = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
    }
)
# PostgreSQL's SQLSTATE for a full disk (class 53, insufficient resources).
_PG_DISK_FULL = "53100"


def disk_full(error: BaseException | None) -> bool:
    """
    Whether ``error``, or what it wraps, is the database out of room:
    SQLite's ``SQLITE_FULL`` ("database or disk is full"), raised by the
    writer's own connection or through SQLAlchemy, or PostgreSQL's
    ``disk_full`` (53100).
    """
    return any(
        _sqlite_code(cause) == sqlite3.SQLITE_FULL
        or getattr(cause, "sqlstate", None) == _PG_DISK_FULL
        for cause in _causes(error)
    )


def unwritable(error: BaseException) -> bool:
    """
    Whether ``error`` is the store refusing a write for a reason of its own
    (out of room, unreachable, busy past its timeout), which passes without
    anything changed in what was written: the write is worth repeating.
    """
    return (
        unavailable(error)
        or disk_full(error)
        or _sqlite_code(error) in _SQLITE_REFUSALS
    )


def _sqlite_code(error: BaseException | None) -> int | None:
    """The primary result code of a sqlite3 error (None for anything else)."""
    if not isinstance(error, sqlite3.Error):
        return None
    code = getattr(error, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF


def _causes(error: BaseException | None) -> list[BaseException]:
    """``error``, the driver error SQLAlchemy wrapped, and their causes."""
    found: list[BaseException] = []
    while error is not None and all(error is not seen for seen in found):
        found.append(error)
        orig = getattr(error, "orig", None)
        error = orig if isinstance(orig, BaseException) else error.__cause__
    return found


def log_failure(logger: logging.Logger, message: str, error: BaseException) -> None:
    """
    Log a background task's failed database work: one warning line when the
    database is unavailable (a worker retries every poll, and a traceback
    each time buried the log), the whole traceback for anything else.
    """
    if unavailable(error):
        logger.warning(
            "%s: database unavailable (%s: %s)",
            message,
            type(error).__name__,
            str(error).splitlines()[0][:200] if str(error) else "",
            extra={"action": "database_unavailable"},
        )
    else:
        logger.error(message, exc_info=error)
