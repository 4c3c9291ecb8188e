"""docmill.settings: values refused or completed where configuration is read."""

from __future__ import annotations

import os
import sys

import pytest
from pydantic import ValidationError

from docmill.settings import Settings


@pytest.fixture(autouse=True)
def unconfigured(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("DOCMILL_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize(
    ("given", "used"),
    [
        pytest.param(
            "postgresql://u:p@db/docmill",
            "postgresql+asyncpg://u:p@db/docmill",
            id="postgresql",
        ),
        pytest.param(
            "postgres://u@db:5433/docmill",
            "postgresql+asyncpg://u@db:5433/docmill",
            id="postgres",
        ),
        pytest.param(
            "POSTGRESQL://u@db/docmill", "postgresql+asyncpg://u@db/docmill", id="upper"
        ),
        pytest.param(
            "sqlite:///x/docmill.db", "sqlite+aiosqlite:///x/docmill.db", id="sqlite"
        ),
        pytest.param(
            "postgresql+asyncpg://u@db/docmill",
            "postgresql+asyncpg://u@db/docmill",
            id="asyncpg-as-given",
        ),
        pytest.param(
            "sqlite+aiosqlite:///docmill.db",
            "sqlite+aiosqlite:///docmill.db",
            id="aiosqlite-as-given",
        ),
        pytest.param(
            "postgresql://u@db/docmill?sslmode=require&application_name=x",
            "postgresql+asyncpg://u@db/docmill?ssl=require&application_name=x",
            id="sslmode",
        ),
        pytest.param(
            "postgresql://u@db/docmill?ssl=disable&sslmode=require",
            "postgresql+asyncpg://u@db/docmill?ssl=disable",
            id="ssl-wins-over-sslmode",
        ),
    ],
)
def test_a_database_url_runs_on_the_async_driver(given: str, used: str) -> None:
    """A bare postgresql:// or sqlite:// was a traceback (a blocking driver)."""
    assert Settings(database_url=given).resolved_database_url == used


def test_a_database_url_from_the_environment_is_mapped_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCMILL_DATABASE_URL", "postgres://u@db/docmill")

    assert Settings().database_url == "postgresql+asyncpg://u@db/docmill"


def test_postgresql_without_asyncpg_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A None entry makes the import system, find_spec included, see no module.
    monkeypatch.setitem(sys.modules, "asyncpg", None)

    with pytest.raises(ValidationError) as raised:
        Settings(database_url="postgresql://u@db/docmill")

    assert "pip install 'docmill[postgres]'" in str(raised.value)


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        pytest.param(
            "postgresql+psycopg2://u:secret@db/docmill",
            "'postgresql+psycopg2' is not a database and driver docmill runs on",
            id="psycopg2",
        ),
        pytest.param(
            "postgresql+psycopg://u:secret@db/docmill",
            "'postgresql+psycopg' is not a database and driver docmill runs on",
            id="psycopg",
        ),
        pytest.param(
            "mysql://u:secret@db/docmill",
            "'mysql' is not a database and driver docmill runs on",
            id="mysql",
        ),
        pytest.param(
            "mysql+pymysql://u:secret@db/docmill",
            "'mysql+pymysql' is not a database and driver docmill runs on",
            id="pymysql",
        ),
        pytest.param(
            "oracle://u:secret@db",
            "'oracle' is not a database and driver docmill runs on",
            id="oracle",
        ),
        pytest.param(
            "sqlite+pysqlite:///docmill.db",
            "'sqlite+pysqlite' is not a database and driver docmill runs on",
            id="pysqlite",
        ),
        pytest.param("secret", "not a database URL", id="no-scheme"),
        pytest.param("u:secret@db://x", "not a database URL", id="not-a-scheme"),
    ],
)
def test_a_database_url_docmill_cannot_run_on_is_refused(
    given: str, reason: str
) -> None:
    """
    Each got as far as the engine, and a traceback (a missing driver
    module, or a blocking driver under asyncio); the password stays out.
    """
    with pytest.raises(ValidationError) as raised:
        Settings(database_url=given)

    assert [error["msg"] for error in raised.value.errors()] == [
        f"Value error, {reason}; use sqlite:// or postgresql:// (also written "
        "sqlite+aiosqlite://, postgres:// or postgresql+asyncpg://)"
    ]


@pytest.mark.parametrize("port", ["abc", "99999"])
def test_a_postgresql_port_that_is_not_one_is_refused(port: str) -> None:
    """It was a ValueError traceback from the engine's URL parser."""
    with pytest.raises(ValidationError) as raised:
        Settings(database_url=f"postgresql://u:secret@db:{port}/docmill")

    assert [error["msg"] for error in raised.value.errors()] == [
        "Value error, the port in the database URL is not a number from 0 to 65535"
    ]


def test_an_empty_data_dir_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """``DOCMILL_DATA_DIR=`` was the current directory, silently."""
    monkeypatch.setenv("DOCMILL_DATA_DIR", "")

    with pytest.raises(ValidationError) as raised:
        Settings()

    assert [error["loc"] for error in raised.value.errors()] == [("data_dir",)]


@pytest.mark.parametrize(
    ("variable", "value", "field", "used"),
    [
        pytest.param(
            "DOCMILL_TRUSTED_PROXIES",
            "10.0.0.1, 10.0.0.0/8",
            "trusted_proxies",
            ["10.0.0.1", "10.0.0.0/8"],
            id="commas",
        ),
        pytest.param(
            "DOCMILL_FETCH_ALLOW_NETWORKS",
            '["127.0.0.0/8"]',
            "fetch_allow_networks",
            ["127.0.0.0/8"],
            id="json",
        ),
        pytest.param(
            "DOCMILL_EXTRACTOR_PLUGINS",
            "docmill.testing",
            "extractor_plugins",
            ["docmill.testing"],
            id="one-plugin",
        ),
        pytest.param("DOCMILL_TRUSTED_PROXIES", "", "trusted_proxies", [], id="empty"),
    ],
)
def test_a_list_from_the_environment_is_json_or_commas(
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
    field: str,
    used: list[str],
) -> None:
    """Anything but a JSON list was a pydantic-settings traceback at start."""
    monkeypatch.setenv(variable, value)

    assert getattr(Settings(), field) == used


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        pytest.param(
            "DOCMILL_TRUSTED_PROXIES", "[10.0.0.1", "not a JSON list", id="json"
        ),
        pytest.param(
            "DOCMILL_RATE_LIMIT", "lots", "not a limit such as", id="rate-limit"
        ),
        pytest.param(
            "DOCMILL_EXTRACTOR_PLUGINS",
            "no_such_docmill_plugin",
            "no module named 'no_such_docmill_plugin'",
            id="plugin",
        ),
    ],
)
def test_a_value_that_would_fail_later_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, reason: str
) -> None:
    """
    Each was a traceback at start (the rate limit, the list), or worse, no
    error at all: every document then failed as worker_crash (the plugin).
    """
    monkeypatch.setenv(variable, value)

    with pytest.raises(ValidationError, match=reason):
        Settings()


def test_redis_without_its_client_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.setattr(
        "docmill.settings.find_spec",
        lambda name: None if name == "redis" else object(),
    )

    with pytest.raises(ValidationError, match=r"docmill\[redis\]"):
        Settings(redis_url="redis://127.0.0.1:6379")
