"""The FastAPI application and the services it holds for its lifetime."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

import docmill
from docmill.api import problems
from docmill.api.middleware import RequestContextMiddleware
from docmill.db.engine import create_engine
from docmill.db.migrate import upgrade
from docmill.queue.retry import RetryPolicy
from docmill.queue.store import JobStore
from docmill.queue.worker import Worker
from docmill.settings import Settings
from docmill.storage import DatabaseStorage, LocalStorage, Storage

logger = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    store: JobStore
    storage: Storage
    worker: Worker | None = None


def build_services(settings: Settings) -> Services:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.resolved_database_url)
    store = JobStore(
        engine,
        RetryPolicy(
            max_attempts=settings.max_attempts,
            base_seconds=settings.retry_base_seconds,
        ),
        lease_seconds=settings.lease_seconds,
    )
    storage: Storage
    if settings.uses_database_storage:
        storage = DatabaseStorage(engine, settings.data_dir / "scratch")
    else:
        storage = LocalStorage(settings.originals_dir)
    return Services(settings, engine, store, storage)


def create_app(settings: Settings | None = None, *, migrate: bool = True) -> FastAPI:
    """
    Build the API.

    Args:
        settings: configuration; read from the environment when omitted.
        migrate: bring the schema up to date at start-up.
    """
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = build_services(settings)
        if migrate:
            await upgrade(services.engine)
        app.state.services = services
        worker_task = None
        if settings.workers > 0:
            services.worker = Worker(
                services.store, services.storage, settings, settings.workers
            )
            worker_task = asyncio.create_task(services.worker.run())
        logger.info(
            "docmill %s API ready (%s, %d embedded worker slot(s))",
            docmill.__version__,
            "SQLite" if settings.is_sqlite else "PostgreSQL",
            settings.workers,
            extra={"action": "api_started"},
        )
        try:
            yield
        finally:
            if services.worker is not None and worker_task is not None:
                await services.worker.stop()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker_task
            await services.engine.dispose()

    app = FastAPI(
        title="docmill",
        version=docmill.__version__,
        summary="Text, metadata and structure from documents, processed durably.",
        lifespan=lifespan,
    )
    from docmill.api.parsers import ParserHooks

    # Added first, so it runs inside the request-id middleware.
    app.add_middleware(ParserHooks)
    app.add_middleware(RequestContextMiddleware)
    problems.install(app)

    from docmill.api import parsers, routes

    app.include_router(routes.router)
    app.include_router(parsers.router)
    return app
