"""Blocking entry points the CLI calls: each runs one event loop to the end."""

from __future__ import annotations

import asyncio
import signal

from docmill.settings import Settings


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


def upgrade_database(settings: Settings) -> None:
    from docmill.db.engine import create_engine
    from docmill.db.migrate import upgrade

    async def _upgrade() -> None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(settings.resolved_database_url)
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()

    asyncio.run(_upgrade())
