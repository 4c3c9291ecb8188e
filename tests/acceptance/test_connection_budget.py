"""
One process's PostgreSQL connections: bounded by DOCMILL_DB_MAX_CONNECTIONS,
and a server that refuses more answers 503, not 500.

Scaling out multiplies each process's connections; with 50 a process and
PostgreSQL's default of 100, a third API process under load got "too many
clients" back from the server, which the API answered with 500.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeout

from docmill.api.app import create_app
from docmill.db.engine import RowReader, connection_shares, create_engine
from docmill.runtime import upgrade_database
from docmill.settings import Settings
from tests.conftest import POSTGRES_URL, _administer
from tests.support import app_client

pytestmark = pytest.mark.postgres

ROLE = f"docmill_budget_{os.getpid()}"


@pytest.fixture
def limited_url(postgres_url: str) -> Iterator[str]:
    """A database owned by a role of its own: PostgreSQL's per-database
    connection limit spares superusers, so the tests' own role would not
    meet it."""
    database = f"{ROLE}_db"
    asyncio.run(_administer(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
    asyncio.run(_administer(f'DROP ROLE IF EXISTS "{ROLE}"'))
    asyncio.run(_administer(f'CREATE ROLE "{ROLE}" LOGIN'))
    asyncio.run(_administer(f'CREATE DATABASE "{database}" OWNER "{ROLE}"'))
    host = POSTGRES_URL.split("@", 1)[1].rsplit("/", 1)[0]
    yield f"postgresql+asyncpg://{ROLE}@{host}/{database}"
    asyncio.run(_administer(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
    asyncio.run(_administer(f'DROP ROLE IF EXISTS "{ROLE}"'))


def _settings(tmp_path: Path, url: str, **changes: object) -> Settings:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=url,
        workers=0,
        rate_limit="",
        **changes,  # type: ignore[arg-type]
    )
    upgrade_database(settings)
    return settings


async def _flood(settings: Settings, requests: int) -> collections.Counter[int]:
    """Submissions and status reads, all at once; the answers' statuses."""
    statuses: collections.Counter[int] = collections.Counter()
    async with app_client(settings) as client:
        first = await client.post("/documents", json={"content": "first"})
        assert first.status_code == 202, first.text
        path = f"/documents/{first.json()['id']}"

        async def one(n: int) -> None:
            if n % 2:
                answer = await client.get(path)
            else:
                answer = await client.post("/documents", json={"content": f"{n}"})
            statuses[answer.status_code] += 1
            if answer.status_code == 503:
                assert answer.headers["content-type"] == "application/problem+json"
                assert int(answer.headers["retry-after"]) > 0

        await asyncio.gather(*(one(n) for n in range(requests)))
    return statuses


async def _connections_of(role: str) -> int:
    import asyncpg

    dsn = POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://")
    connection = await asyncpg.connect(dsn, timeout=5)
    try:
        count = await connection.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = $1", role
        )
        return int(count)
    finally:
        await connection.close()


async def _held_at_once(url: str, budget: int, wanted: int) -> int:
    """
    How many connections the role holds while ``wanted`` callers each hold
    an engine connection and ``wanted`` more a read-pool connection, on an
    engine given ``budget``: those past the budget wait, and give up.
    """
    engine = create_engine(url, max_connections=budget, pool_timeout=1)
    reads = RowReader(engine)
    pool = await reads._asyncpg_pool()
    held = asyncio.Event()
    release = asyncio.Event()
    holding = 0

    async def hold(acquire: Any) -> None:
        nonlocal holding
        try:
            async with acquire():
                holding += 1
                if holding == 2 * wanted:
                    held.set()
                await release.wait()
        except (TimeoutError, SQLAlchemyTimeout):
            holding += 1  # gave up waiting for a connection
            if holding == 2 * wanted:
                held.set()

    def from_pool() -> Any:
        return pool.acquire(timeout=1)

    try:
        holders = [asyncio.ensure_future(hold(engine.connect)) for _ in range(wanted)]
        holders += [asyncio.ensure_future(hold(from_pool)) for _ in range(wanted)]
        await asyncio.wait_for(held.wait(), 10)
        count = await _connections_of(ROLE)
        release.set()
        await asyncio.gather(*holders)
        return count
    finally:
        await pool.close()
        await engine.dispose()


def test_a_process_opens_no_more_connections_than_its_budget(
    limited_url: str,
) -> None:
    assert asyncio.run(_held_at_once(limited_url, budget=5, wanted=8)) == 5
    # The default budget is room for all 16.
    assert asyncio.run(_held_at_once(limited_url, budget=50, wanted=8)) == 16


def test_the_api_and_worker_engines_take_the_setting(
    tmp_path: Path, limited_url: str
) -> None:
    from docmill.api.app import build_services

    settings = _settings(tmp_path, limited_url, db_max_connections=7)
    services = build_services(settings)
    try:
        pool = services.engine.sync_engine.pool
        assert (pool.size(), pool._max_overflow) == connection_shares(7)[:2]  # type: ignore[attr-defined]
    finally:
        asyncio.run(services.engine.dispose())
        asyncio.run(services.store.close())


def test_a_server_out_of_connections_is_a_503_not_a_500(
    tmp_path: Path, limited_url: str
) -> None:
    database = limited_url.rsplit("/", 1)[1]
    asyncio.run(_administer(f'ALTER DATABASE "{database}" CONNECTION LIMIT 2'))
    settings = _settings(tmp_path, limited_url)

    statuses = asyncio.run(_flood(settings, 400))

    assert 500 not in statuses, statuses
    assert statuses[503] > 0, statuses
    assert statuses[200] + statuses[202] > 0, statuses


@pytest.mark.parametrize("budget", [3, 4, 5, 10, 50, 51, 200])
def test_the_shares_add_up_to_the_budget(budget: int) -> None:
    shares = connection_shares(budget)
    assert sum(shares) == budget
    assert shares.pool >= 1 and shares.reads >= 1 and shares.overflow >= 0


def test_the_default_budget_keeps_the_measured_pools() -> None:
    assert connection_shares(50) == (20, 10, 20)


def test_a_worker_refused_connections_warns_in_a_line_and_carries_on(
    tmp_path: Path, limited_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """
    A worker retries its claims every poll while PostgreSQL refuses it; each
    failure logged a whole traceback at ERROR, about 500 lines a second from
    one worker. Now each is one warning line saying why.
    """
    from docmill.api.app import build_services
    from docmill.queue.worker import Worker

    settings = _settings(tmp_path, limited_url, poll_seconds=0.05)
    database = limited_url.rsplit("/", 1)[1]
    asyncio.run(_administer(f'ALTER DATABASE "{database}" CONNECTION LIMIT 0'))

    async def run() -> None:
        services = build_services(settings)
        worker = Worker(services.store, services.storage, settings, 1)
        running = asyncio.ensure_future(worker.run())
        await asyncio.sleep(1)
        await worker.stop(0)
        await running
        await services.engine.dispose()
        await services.store.close()

    with caplog.at_level(logging.INFO, logger="docmill"):
        asyncio.run(run())

    refused = [
        record
        for record in caplog.records
        if getattr(record, "action", None) == "database_unavailable"
    ]
    assert len(refused) >= 5
    assert all(record.levelno == logging.WARNING for record in refused)
    assert "too many connections" in refused[0].getMessage()
    assert [
        record.getMessage()
        for record in caplog.records
        if record.exc_info and record.name.startswith("docmill")
    ] == []


def test_a_database_not_accepting_connections_is_a_503_not_a_500(
    tmp_path: Path, limited_url: str
) -> None:
    """
    ``ALTER DATABASE ... ALLOW_CONNECTIONS false`` (an operator's way to
    fence a database off) refuses with SQLSTATE 55000, a code PostgreSQL
    also uses for faults in docmill's own statements; only the refusal is
    the database being unavailable.
    """
    settings = _settings(tmp_path, limited_url)
    database = limited_url.rsplit("/", 1)[1]

    async def run() -> list[httpx.Response]:
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            await _administer(
                f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS false'
            )
            await _administer(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = '{database}'"
            )
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://docmill.test"
            ) as client:
                answers = [
                    await client.post("/documents", json={"content": "x"}),
                    await client.get("/documents"),
                    await client.get("/metrics"),
                ]
            await _administer(
                f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS true'
            )
            return answers

    answers = asyncio.run(run())

    assert [answer.status_code for answer in answers] == [503, 503, 503]
    for answer in answers:
        assert answer.json()["type"] == "urn:docmill:problem:database-unavailable"
        assert int(answer.headers["retry-after"]) > 0


def test_a_database_that_is_gone_is_a_503_not_a_500(
    tmp_path: Path, limited_url: str
) -> None:
    """
    The database dropped under a running server (or a URL naming one not
    created yet): SQLSTATE 3D000 at connect time gave 500 and a traceback
    from every background task at every poll.
    """
    settings = _settings(tmp_path, limited_url)
    database = limited_url.rsplit("/", 1)[1]

    async def run() -> list[httpx.Response]:
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            await _administer(f'DROP DATABASE "{database}" WITH (FORCE)')
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://docmill.test"
            ) as client:
                return [
                    await client.post("/documents", json={"content": "x"}),
                    await client.get("/documents"),
                ]

    answers = asyncio.run(run())

    assert [answer.status_code for answer in answers] == [503, 503]
    for answer in answers:
        assert answer.json()["type"] == "urn:docmill:problem:database-unavailable"


def test_a_statement_in_the_wrong_state_is_still_a_fault(postgres_url: str) -> None:
    """SQLSTATE 55000 from a statement (an ERROR, not a FATAL refusal) is
    docmill's own mistake, and must not hide as a 503."""
    import asyncpg

    from docmill.db.errors import unavailable

    async def fault() -> BaseException:
        dsn = postgres_url.replace("postgresql+asyncpg://", "postgresql://")
        connection = await asyncpg.connect(dsn, timeout=5)
        try:
            await connection.execute("CREATE TEMPORARY SEQUENCE never_used")
            await connection.fetchval("SELECT currval('never_used')")
        except asyncpg.PostgresError as exc:
            return exc
        finally:
            await connection.close()
        raise AssertionError("currval before nextval succeeded")

    error = asyncio.run(fault())

    assert isinstance(error, asyncpg.ObjectNotInPrerequisiteStateError)
    assert not unavailable(error)
