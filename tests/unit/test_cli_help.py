"""The help of every ``docmill`` command and group, as a user reads it."""

from __future__ import annotations

from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from docmill.cli import app


def command_paths(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The words that name each group and command under ``group``, itself first."""
    paths = [prefix]
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            paths += command_paths(command, (*prefix, name))
        else:
            paths.append((*prefix, name))
    return paths


def clicks(path: tuple[str, ...]) -> Any:
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    return command


PATHS = command_paths(typer.main.get_command(app))


def shown_help(monkeypatch: pytest.MonkeyPatch, path: tuple[str, ...]) -> str:
    """``docmill PATH --help``, wide enough that no help text wraps."""
    monkeypatch.setenv("COLUMNS", "1000")
    result = CliRunner().invoke(app, [*path, "--help"], prog_name="docmill")
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


@pytest.mark.parametrize("path", PATHS, ids=lambda path: " ".join(path) or "docmill")
def test_a_flag_shows_no_value_type(
    monkeypatch: pytest.MonkeyPatch, path: tuple[str, ...]
) -> None:
    """``--wait <bool>`` read as an option that takes a value."""
    assert "<bool>" not in shown_help(monkeypatch, path)


@pytest.mark.parametrize("path", PATHS, ids=lambda path: " ".join(path) or "docmill")
def test_every_parameter_shows_its_help(
    monkeypatch: pytest.MonkeyPatch, path: tuple[str, ...]
) -> None:
    """
    Some had none; text in brackets ("[env: ...]") was taken for rich markup
    and vanished.
    """
    shown = shown_help(monkeypatch, path)
    command = clicks(path)
    with command.make_context("docmill", [], resilient_parsing=True) as ctx:
        # After the help was shown: a command may fill its help in then.
        helps = {param.name: param.help for param in command.get_params(ctx)}

    missing = [
        name
        for name, text in helps.items()
        if not text or " ".join(text.split()) not in shown
    ]
    assert missing == []


@pytest.mark.parametrize("path", PATHS, ids=lambda path: " ".join(path) or "docmill")
def test_environment_variables_are_named_one_way(
    monkeypatch: pytest.MonkeyPatch, path: tuple[str, ...]
) -> None:
    """Most help said (env: DOCMILL_...), some [env var: ...] or [env: ...]."""
    shown = shown_help(monkeypatch, path)

    assert ("env var:" in shown, "[env:" in shown) == (False, False)
