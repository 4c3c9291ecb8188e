"""Blocking entry points the CLI calls: each runs one event loop to the end."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from docmill.settings import Settings

if TYPE_CHECKING:
    from docmill.api.app import Services

T = TypeVar("T")


def freeze_start_up() -> None:
    """
    Leave what start-up made out of every later garbage collection.

    A process that serves until stopped keeps nearly all of it for good
    (modules, the app, the ORM's mappings, the extractors' tables), and
    each full collection walked all of it on the event loop's thread:
    some 130,000 objects, 50 to 190 ms while requests and results waited.
    Start-up's garbage is collected first, so that none of it is kept.
    """
    import gc

    gc.collect()
    gc.freeze()


class DatabaseNotReady(Exception):
    """The admin verb's database is missing, unreachable or not migrated."""


def run_worker(settings: Settings, concurrency: int, *, drain: bool = False) -> None:
    """Run a standalone worker until SIGTERM/SIGINT (or, with drain, until idle)."""
    from docmill.log import configure_logging

    configure_logging(settings.log_level)
    asyncio.run(_run_worker(settings, concurrency, drain))


async def _run_worker(settings: Settings, concurrency: int, drain: bool) -> None:
    from docmill.api.app import build_services
    from docmill.db.migrate import upgrade
    from docmill.queue.worker import Worker

    services = build_services(settings)
    if settings.is_sqlite:
        await upgrade(services.engine)
    worker = Worker(services.store, services.storage, settings, concurrency)
    freeze_start_up()
    loop = asyncio.get_running_loop()
    stopping: list[asyncio.Task[None]] = []

    def _on_signal() -> None:
        if not stopping:
            stopping.append(asyncio.create_task(worker.stop()))

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _on_signal)
    try:
        await worker.run(drain=drain)
        if stopping:
            await stopping[0]
    finally:
        await services.engine.dispose()
    if drain and worker.claim_failed and not stopping:
        # `--once` from cron must not report success having done nothing.
        sys.stderr.write(
            "docmill: the worker could not claim work: the database could not "
            "be reached or refused it (see the log)\n"
        )
        raise SystemExit(1)


def upgrade_database(settings: Settings) -> str:
    """Migrate to the newest schema; says if it was created, upgraded or current."""
    from docmill.db.engine import create_engine
    from docmill.db.migrate import current_revisions, upgrade

    async def _upgrade() -> str:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(settings.resolved_database_url)
        try:
            before = await current_revisions(engine)
            await upgrade(engine)
            after = await current_revisions(engine)
        finally:
            await engine.dispose()
        if not before:
            return f"database schema created (revision {', '.join(after)})"
        if before != after:
            return (
                f"database schema upgraded from revision {', '.join(before)} "
                f"to {', '.join(after)}"
            )
        return f"database schema is current (revision {', '.join(after)})"

    return asyncio.run(_upgrade())


def require_schema(settings: Settings, command: str = "serve") -> None:
    """
    Refuse to serve (or run a worker) from a database whose schema is
    missing or older than this docmill, when the database can be reached.

    An API on such a database started and answered every request with 500;
    a worker logged a failed claim every poll, for ever. One that cannot be
    reached yet (PostgreSQL still starting beside it) still starts: ``/readyz``
    says so until it can, and a worker retries its claims.

    Args:
        settings: names the database.
        command: the command to run after ``docmill db upgrade``, as the
            message puts it.

    Raises:
        DatabaseNotReady: with a sentence that says what to run first.
    """
    from sqlalchemy.exc import DBAPIError

    from docmill.db.engine import create_engine
    from docmill.db.migrate import is_current

    async def _check() -> bool | None:
        engine = create_engine(settings.resolved_database_url)
        try:
            return await is_current(engine)
        except (OSError, DBAPIError):
            return None
        finally:
            await engine.dispose()

    if asyncio.run(_check()) is False:
        raise DatabaseNotReady(
            "the database schema is missing or older than this docmill; run "
            f"`docmill db upgrade` first (with the same --database-url), then "
            f"{command}"
        )


def run_admin(settings: Settings, operation: Callable[[Services], Awaitable[T]]) -> T:
    """
    Run ``operation`` against the configured database, which must exist and
    have the current schema.

    Raises:
        DatabaseNotReady: with a sentence that says what to run instead.
    """
    from sqlalchemy.exc import DBAPIError

    from docmill.api.app import build_services
    from docmill.db.migrate import is_current

    where = "pass --data-dir / --database-url"
    if settings.is_sqlite and settings.database_url is None:
        database = settings.data_dir / "docmill.db"
        if not database.exists():
            # Creating an empty database here would only hide a wrong
            # directory: the key or change would go where no server looks.
            raise DatabaseNotReady(
                f"no docmill database at {database}; run this where `docmill "
                f"serve` keeps its data or {where}, or create it with `docmill "
                "db upgrade`"
            )

    async def _run() -> T:
        services = build_services(settings)
        try:
            try:
                current = await is_current(services.engine)
            except (OSError, DBAPIError) as exc:
                cause = getattr(exc, "orig", None) or exc
                raise DatabaseNotReady(
                    f"cannot open the database: {type(cause).__name__}: "
                    f"{str(cause).splitlines()[0]}"
                ) from exc
            if not current:
                raise DatabaseNotReady(
                    "the database schema is missing or older than this docmill; "
                    "run `docmill db upgrade` first (with the same "
                    "--data-dir / --database-url)"
                )
            return await operation(services)
        finally:
            await services.engine.dispose()
            await services.store.close()

    return asyncio.run(_run())
