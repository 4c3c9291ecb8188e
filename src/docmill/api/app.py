"""The FastAPI application and the services it holds for its lifetime."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

import docmill
from docmill.api import auth, openapi, problems
from docmill.api.middleware import RequestContextMiddleware
from docmill.api.ratelimit import RateLimiter
from docmill.api.submit import PendingGauge
from docmill.db.engine import create_engine
from docmill.db.migrate import upgrade
from docmill.queue.keys import KeyStore
from docmill.queue.outbox import Outbox
from docmill.queue.retry import RetryPolicy
from docmill.queue.store import JobStore
from docmill.queue.worker import Worker
from docmill.settings import Settings
from docmill.storage import (
    SWEEP_SHUTDOWN_SECONDS,
    DatabaseStorage,
    LocalStorage,
    Storage,
    sweep_periodically,
)

logger = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    store: JobStore
    storage: Storage
    keys: KeyStore
    limiter: RateLimiter
    outbox: Outbox
    worker: Worker | None = None
    pending: PendingGauge = field(default_factory=PendingGauge)


def build_services(settings: Settings) -> Services:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        settings.resolved_database_url, max_connections=settings.db_max_connections
    )
    store = JobStore(
        engine,
        RetryPolicy(
            max_attempts=settings.max_attempts,
            base_seconds=settings.retry_base_seconds,
        ),
        lease_seconds=settings.lease_seconds,
        webhook_url=settings.webhook_url,
        max_pending=settings.max_pending,
    )
    storage: Storage
    timeout = settings.upload_timeout_seconds
    if settings.uses_database_storage:
        storage = DatabaseStorage(
            engine, settings.data_dir / "scratch", timeout, reads=store.reads
        )
    else:
        storage = LocalStorage(
            settings.originals_dir, engine, timeout, reads=store.reads
        )
    services = Services(
        settings,
        engine,
        store,
        storage,
        keys=KeyStore(engine),
        limiter=RateLimiter(settings.rate_limit, settings.redis_url),
        outbox=Outbox(
            engine, settings.webhook_max_attempts, settings.webhook_retry_base_seconds
        ),
    )
    # The store counts the queue inside each insert only when this
    # process's estimate says the limit is in reach.
    store.limit_is_near = lambda: services.pending.within_reach(store.max_pending)
    return services


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
        # Set when the server begins to stop (see `docmill serve`): event
        # streams end rather than hold the stop up.
        app.state.stopping = asyncio.Event()
        # Uploads of a process killed mid-way leave staging that nothing
        # else removes.
        stop_sweeping = asyncio.Event()
        sweeper = asyncio.create_task(
            sweep_periodically(
                services.storage, settings.staging_max_age_seconds, stop_sweeping
            )
        )
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
        auth.announce(settings)
        try:
            yield
        finally:
            stop_sweeping.set()
            # A sweep in progress finishes; one stuck on the database is
            # cancelled rather than holding up shutdown.
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(sweeper, SWEEP_SHUTDOWN_SECONDS)
            if services.worker is not None and worker_task is not None:
                await services.worker.stop()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker_task
            await services.engine.dispose()
            await services.store.close()

    app = FastAPI(
        title="docmill",
        version=docmill.__version__,
        summary="Text, metadata and structure from documents, processed durably.",
        lifespan=lifespan,
        # docs.install adds them, served from this server when it can be.
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(RequestContextMiddleware)
    problems.install(app)

    from docmill.api import deliveries, docs, events, metrics, parsers, routes, submit

    # Their routes are GuardedRoutes: each request is authenticated and
    # rate-limited (auth.admit) before its endpoint runs.
    guarded = [m.router for m in (submit, routes, parsers, deliveries, events)]
    for router in guarded:
        app.include_router(router)
    app.include_router(metrics.router)
    # /metrics admits callers itself, so that DOCMILL_METRICS_PUBLIC can open it.
    open_paths = auth.OPEN_PATHS
    if settings.metrics_public:
        open_paths |= {"/metrics"}
    openapi.install(app, [*guarded, metrics.router], open_paths)
    docs.install(app, docs.local_assets())
    return app
