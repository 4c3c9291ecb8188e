"""The FastAPI application and the services it holds for its lifetime."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

import docmill
from docmill.api import auth, openapi, problems
from docmill.api.middleware import RequestContextMiddleware
from docmill.api.ratelimit import RateLimiter
from docmill.api.submit import PendingGauge
from docmill.db.engine import create_engine
from docmill.db.file import DatabaseFile, sqlite_path, warn_if_originals_orphaned
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
    WritableProbe,
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
    data_dir_probe: WritableProbe | None = None
    database_file: DatabaseFile | None = None


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
    services.data_dir_probe = WritableProbe(settings.data_dir)
    # The store counts the queue inside each insert only when this
    # process's estimate says the limit is in reach.
    store.limit_is_near = lambda: services.pending.within_reach(store.max_pending)
    return services


def _empty(path: Path) -> bool:
    try:
        return path.stat().st_size == 0
    except FileNotFoundError:
        return True


def create_app(
    settings: Settings | None = None,
    *,
    migrate: bool = True,
    long_running: bool = False,
) -> FastAPI:
    """
    Build the API.

    Args:
        settings: configuration; read from the environment when omitted.
        migrate: bring the schema up to date at start-up.
        long_running: the app is this process's for good (``docmill
            serve``): what start-up made is frozen out of garbage
            collection (``runtime.freeze_start_up``). Not for a process
            that builds many apps, such as the tests: each would keep the
            last one's leftovers for good.
    """
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database_path = sqlite_path(settings.resolved_database_url)
        new_database = database_path is not None and _empty(database_path)
        services = build_services(settings)
        if migrate:
            await upgrade(services.engine)
        if database_path is not None and database_path.exists():
            services.database_file = DatabaseFile(database_path)
            services.database_file.remember()
            warn_if_originals_orphaned(
                database_path, settings.originals_dir, new_database
            )
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
        if long_running:
            from docmill.runtime import freeze_start_up

            freeze_start_up()
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
        description=(
            "Every error is `application/problem+json`; branch on its `type`. "
            "Every GET route also answers HEAD: the same status and headers, "
            "no body."
        ),
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
