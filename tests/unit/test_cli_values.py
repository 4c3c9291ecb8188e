"""
Plain option values: the same results as Typer's own conversion, without pydantic.

Typer's conversion (through pydantic) is the reference: every value the
plain conversion answers for must come out as Typer makes it, and every
other value must reach Typer.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main
from typer.testing import CliRunner

from docmill._cli_values import PlainCommand, plain_value
from docmill.cli import app

probe = typer.Typer()


@probe.command(cls=PlainCommand)
def _probe(
    paths: list[Path] = typer.Argument(None),
    text: str | None = typer.Option(None),
    count: int = typer.Option(0),
    seconds: float | None = typer.Option(None),
    flag: bool = typer.Option(True, "--flag/--no-flag"),
    rules: Path | None = typer.Option(None),
    names: list[str] = typer.Option([], "--name"),
) -> None:
    """A command with each plain type."""


def params() -> dict[str, Any]:
    command = typer.main.get_command(probe)
    return {param.name: param for param in command.params}


def outcome(convert: Any, value: Any) -> Any:
    try:
        return convert(value)
    except Exception as exc:
        return exc


def typers_own(param: Any, value: Any) -> Any:
    """What Typer's conversion makes of ``value``; the exception it raises."""
    from typer._coercion import build_runtime_param

    converter = build_runtime_param(param.type_descriptor)
    return outcome(lambda v: converter.coerce(v, param=param, ctx=None), value)


def key(result: Any) -> tuple[type, str]:
    """What must match: the type, and the value or the error's message."""
    if isinstance(result, Exception):
        return (type(result), str(result))
    return (type(result), repr(result))


VALUES = [
    None,
    "",
    "0",
    "7",
    "007",
    "-0",
    "+3",
    "-12",
    " 3",
    "3 ",
    "1_0",
    "3.0",
    "3.",
    "3.5",
    ".5",
    "-.5",
    "1e3",
    "inf",
    "nan",
    "0x10",
    "٣",
    "9" * 18,
    "9" * 40,
    "1." + "5" * 30,
    "abc",
    "a b",
    "~/x",
    "a/",
    "//a//b/",
    "a\x00b",
    0,
    5,
    2.5,
    True,
    False,
    b"bytes",
]


@pytest.mark.parametrize("name", ["text", "count", "seconds", "flag", "rules"])
def test_plain_values_convert_as_typer_does(name: str) -> None:
    param = params()[name]
    plain = plain_value(param)
    assert plain is not None

    for value in VALUES:
        theirs = typers_own(param, value)
        ours = outcome(lambda v: plain.coerce(v, param=param, ctx=None), value)
        if name == "rules" and value == "":
            # The one deliberate difference: Typer makes "" the current
            # directory, which `--data-dir "$UNSET"` should not be.
            assert isinstance(ours, typer.BadParameter), repr(ours)
            continue
        assert key(ours) == key(theirs), repr(value)


@pytest.mark.parametrize("name", ["paths", "names"])
def test_lists_convert_item_by_item_as_typer_does(name: str) -> None:
    param = params()[name]
    plain = plain_value(param)
    assert plain is not None

    for value in [None, (), ("a", "b/"), ["x"], ("a\x00b",), "a"]:
        theirs = typers_own(param, value)
        ours = outcome(lambda v: plain.coerce(v, param=param, ctx=None), value)
        assert key(ours) == key(theirs), repr(value)


def test_values_in_doubt_are_left_to_typer() -> None:
    param = params()["count"]
    plain = plain_value(param)
    assert plain is not None

    assert plain.coerce("1_0", param=param, ctx=None) == 10
    with pytest.raises(typer.BadParameter, match="valid integer"):
        plain.coerce("abc", param=param, ctx=None)


def test_an_unreadable_path_is_left_to_typer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    param = params()["rules"]
    plain = plain_value(param)
    assert plain is not None
    # Root reads every file, so the check is told the file is unreadable.
    monkeypatch.setattr(os, "access", lambda *args, **kwargs: False)

    with pytest.raises(typer.BadParameter, match="is not readable"):
        plain.coerce(str(tmp_path), param=param, ctx=None)


def test_plain_conversion_needs_no_pydantic() -> None:
    """The point of it; run in a fresh interpreter so no import is cached."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import typer.main\n"
        "from tests.unit.test_cli_values import params\n"
        "from docmill._cli_values import plain_value\n"
        "ps = params()\n"
        "for name, value in [('count', '3'), ('seconds', '2.5'), ('text', 'x'),\n"
        "                    ('rules', 'a'), ('paths', ('a',)), ('flag', True)]:\n"
        "    plain_value(ps[name]).coerce(value, param=ps[name], ctx=None)\n"
        "print('pydantic' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )

    assert done.stdout == "False\n"


def test_a_bad_number_is_typers_usage_error() -> None:
    result = CliRunner().invoke(app, ["extract", "--jobs", "abc", "x"])

    assert result.exit_code == 2
    assert "Invalid value for '--jobs'" in result.output
    assert "valid integer" in result.output


def test_a_negative_job_count_is_a_usage_error(tmp_path: Path) -> None:
    document = tmp_path / "a.txt"
    document.write_text("alpha")

    result = CliRunner().invoke(app, ["extract", "--jobs", "-1", str(document)])

    assert result.exit_code == 2
    assert "Invalid value for --jobs" in result.output


def usage_lines(group: Any, prefix: str = "docmill") -> dict[str, str]:
    """Every command's usage line, by its command path."""
    lines = {}
    for name, command in group.commands.items():
        path = f"{prefix} {name}"
        if hasattr(command, "commands"):
            lines |= usage_lines(command, path)
            continue
        with command.make_context(path, [], resilient_parsing=True) as ctx:
            lines[path] = command.get_usage(ctx)
    return lines


@pytest.mark.parametrize(
    ("path", "usage"),
    [
        pytest.param(
            "docmill extract",
            "Usage: docmill extract [OPTIONS] PATHS...",
            id="required-many",
        ),
        pytest.param(
            "docmill keys create", "Usage: docmill keys create [OPTIONS] NAME", id="one"
        ),
        pytest.param(
            "docmill queue retry",
            "Usage: docmill queue retry [OPTIONS] [DOCUMENT_IDS]...",
            id="optional-many",
        ),
    ],
)
def test_usage_names_arguments_as_click_does(path: str, usage: str) -> None:
    assert usage_lines(typer.main.get_command(app))[path] == usage


def test_no_usage_line_keeps_typers_braces() -> None:
    lines = usage_lines(typer.main.get_command(app))

    assert [line for line in lines.values() if "{" in line] == []


def test_extract_help_shows_the_usage_line() -> None:
    result = CliRunner().invoke(
        app, ["extract", "--help"], prog_name="docmill", terminal_width=100
    )

    assert "Usage: docmill extract [OPTIONS] PATHS..." in result.output
