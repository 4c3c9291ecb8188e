"""docmill.settings: values refused or completed where configuration is read."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from docmill.settings import Settings


@pytest.fixture(autouse=True)
def unconfigured(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("DOCMILL_"):
            monkeypatch.delenv(name)


def test_an_empty_data_dir_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """``DOCMILL_DATA_DIR=`` was the current directory, silently."""
    monkeypatch.setenv("DOCMILL_DATA_DIR", "")

    with pytest.raises(ValidationError) as raised:
        Settings()

    assert [error["loc"] for error in raised.value.errors()] == [("data_dir",)]
