"""Telling a database that cannot be had from a fault in docmill."""

from __future__ import annotations

import logging
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
