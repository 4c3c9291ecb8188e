"""docmill.extract_settings: what `docmill extract` reads, without pydantic."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from docmill.extract_settings import ExtractSettings, load_extract_settings
from docmill.settings import Settings


@pytest.fixture(autouse=True)
def unconfigured(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("DOCMILL_"):
            monkeypatch.delenv(name)


def test_defaults_are_what_settings_reads_from_an_empty_environment() -> None:
    assert load_extract_settings() == Settings().extract_settings()


def test_defaults_skip_settings_when_nothing_is_configured() -> None:
    assert type(load_extract_settings()) is ExtractSettings


@pytest.mark.parametrize(
    "name", ["DOCMILL_MAX_TEXT_CHARS", "docmill_max_text_chars"], ids=["upper", "lower"]
)
def test_a_variable_is_read_as_settings_reads_it(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv(name, "5")

    assert load_extract_settings().limits.max_text_chars == 5


def test_an_invalid_variable_fails_as_settings_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCMILL_JOB_MEMORY_MB", "lots")

    with pytest.raises(ValidationError, match="job_memory_mb"):
        load_extract_settings()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        pytest.param("DOCMILL_DATA_DIR", "", id="empty-data-dir"),
        pytest.param("DOCMILL_DATABASE_URL", "mysql://u@db/docmill", id="mysql"),
        pytest.param("DOCMILL_PORT", "eighty", id="port"),
    ],
)
def test_a_setting_extract_does_not_read_is_not_validated(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    """A server's setting left in the environment refused `docmill extract`."""
    monkeypatch.setenv(variable, value)
    monkeypatch.setenv("DOCMILL_MAX_TEXT_CHARS", "5")

    assert load_extract_settings().limits.max_text_chars == 5


def test_only_the_settings_extract_reads_are_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCMILL_DATA_DIR", "")
    monkeypatch.setenv("DOCMILL_JOB_MEMORY_MB", "lots")

    with pytest.raises(ValidationError) as raised:
        load_extract_settings()

    assert [error["loc"] for error in raised.value.errors()] == [("job_memory_mb",)]


def test_flags_are_validated_by_settings() -> None:
    with pytest.raises(ValidationError, match="job_timeout_seconds"):
        load_extract_settings(job_timeout_seconds=0.0)


def test_a_flag_overrides_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCMILL_JOB_TIMEOUT_SECONDS", "7")

    assert load_extract_settings(job_timeout_seconds=3.0).job_timeout_seconds == 3.0


def test_settings_read_only_the_environment() -> None:
    """
    The shortcut above knows only environment variables.

    A dotenv file or secrets directory read by Settings would be skipped
    when no DOCMILL_ variable is set; adding one means teaching
    docmill.extract_settings to look for it.
    """
    config = Settings.model_config

    assert (config.get("env_file"), config.get("secrets_dir")) == (None, None)


def test_the_package_still_exports_settings() -> None:
    """docmill.Settings is loaded on first use, not when docmill is imported."""
    import docmill

    assert docmill.Settings is Settings


def test_the_result_budget_reaches_the_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCMILL_MAX_RESULT_CHARS", "7")

    assert load_extract_settings().limits.max_result_chars == 7
