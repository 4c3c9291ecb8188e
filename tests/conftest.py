"""
Fixtures shared by every test layer.

Database-backed tests run twice, on SQLite and on PostgreSQL. PostgreSQL is
taken from ``DOCMILL_TEST_POSTGRES_URL`` (default: the local server on
127.0.0.1:5432, database ``test``). Where it cannot be reached those tests
skip with the reason shown, except under CI (``CI=true``), where an absent
server is an error: CI must never pass by skipping them.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from docmill.settings import Settings

POSTGRES_URL = os.environ.get(
    "DOCMILL_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
CORPUS_DIR = Path(
    os.environ.get(
        "DOCMILL_TEST_CORPUS",
        Path(__file__).resolve().parents[2] / "shared" / "corpus",
    )
)
_postgres_error: str | None = None
_postgres_checked = False


def _check_postgres() -> str | None:
    global _postgres_checked, _postgres_error
    if _postgres_checked:
        return _postgres_error
    _postgres_checked = True

    async def probe() -> None:
        import asyncpg

        dsn = POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://")
        connection = await asyncpg.connect(dsn, timeout=5)
        await connection.close()

    try:
        asyncio.run(probe())
    except Exception as exc:
        _postgres_error = f"PostgreSQL at {POSTGRES_URL} unreachable: {exc!r}"
    return _postgres_error


def require_postgres() -> None:
    error = _check_postgres()
    if error is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{error} (CI must run the PostgreSQL tests)")
    pytest.skip(error)


async def _administer(statement: str) -> None:
    import asyncpg

    dsn = POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://")
    connection = await asyncpg.connect(dsn, timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """
    A database of this test session's own on the PostgreSQL server.

    Several test runs may share one server (CI, developers, benchmarks), and
    each resets its tables per test, so each gets a database of its own.
    ``DOCMILL_TEST_DATABASE_PREFIX`` names it, for a server whose users may
    create databases under their own prefix only.
    """
    require_postgres()
    prefix = os.environ.get("DOCMILL_TEST_DATABASE_PREFIX", "docmill_test")
    name = f"{prefix}_{os.getpid()}"
    asyncio.run(_administer(f'DROP DATABASE IF EXISTS "{name}"'))
    asyncio.run(_administer(f'CREATE DATABASE "{name}"'))
    yield f"{POSTGRES_URL.rsplit('/', 1)[0]}/{name}"
    asyncio.run(_administer(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def reset_postgres(url: str) -> None:
    from sqlalchemy import text

    from docmill.db.engine import create_engine

    engine = create_engine(url)
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "DROP TABLE IF EXISTS attempts, document_contents, documents, blobs, "
                "blob_chunks, parsers, document_fields, "
                "api_keys, idempotency_keys, webhook_deliveries, document_search, "
                "alembic_version CASCADE"
            )
        )
    await engine.dispose()


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'docmill.db'}"
        return
    url = request.getfixturevalue("postgres_url")
    asyncio.run(reset_postgres(url))
    yield url


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        workers=2,
        lease_seconds=5,
        poll_seconds=0.05,
        job_timeout_seconds=20,
        retry_base_seconds=0.05,
        shutdown_grace_seconds=2,
        extractor_plugins=["docmill.testing"],
    )


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[object]:
    from docmill.api.app import build_services
    from docmill.db.migrate import upgrade

    services = build_services(settings)
    await upgrade(services.engine)
    yield services.store
    await services.engine.dispose()
    await services.store.close()


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    if not (CORPUS_DIR / "MANIFEST.tsv").exists():
        pytest.skip(f"shared corpus not found at {CORPUS_DIR}")
    return CORPUS_DIR


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from tests.integration.corpus import TALLY

    if not TALLY:
        return
    terminalreporter.section("shared corpus facts, per format")
    for folder in sorted(TALLY):
        passed, failed, disputed = TALLY[folder]
        line = f"{folder:<8} {passed} passed, {failed} failed"
        if disputed:
            line += f", {disputed} disputed (strict xfail, reason above)"
        terminalreporter.write_line(line)
    totals = [sum(t[i] for t in TALLY.values()) for i in range(3)]
    terminalreporter.write_line(
        f"all files: {totals[0]} passed, {totals[1]} failed, {totals[2]} disputed"
    )
