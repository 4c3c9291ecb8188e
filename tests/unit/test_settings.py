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


def test_an_empty_data_dir_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """``DOCMILL_DATA_DIR=`` was the current directory, silently."""
    monkeypatch.setenv("DOCMILL_DATA_DIR", "")

    with pytest.raises(ValidationError) as raised:
        Settings()

    assert [error["loc"] for error in raised.value.errors()] == [("data_dir",)]
