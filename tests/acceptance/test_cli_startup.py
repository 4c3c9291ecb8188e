"""
What the CLI imports, by module presence rather than by timing.

Issue 7 wants `docmill extract` of one small file to start quickly. A clock
in a test would flake on a busy machine; the set of modules a command loads
does not, and it is where start-up time goes.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

# Runs the CLI like the `docmill` script does, then reports the parent's
# modules on exit, by either road: `extract` ends its process with
# os._exit, which runs no atexit handler. Its extraction children, which
# leave by os._exit too, report none.
PROBE = """
import atexit, os, sys
parent = os.getpid()
def report():
    if os.getpid() == parent:
        sys.stderr.write("\\nMODULES " + " ".join(sorted(sys.modules)) + "\\n")
        sys.stderr.flush()
atexit.register(report)
leave = os._exit
def report_and_leave(code):
    report()
    leave(code)
os._exit = report_and_leave
sys.argv = ["docmill", *sys.argv[1:]]
from docmill.cli import main
main()
"""

# None of these does anything for `docmill extract` or `docmill --help`.
SERVICE_STACK = [
    "pydantic",
    "pydantic_settings",
    "docmill.settings",
    "sqlalchemy",
    "alembic",
    "aiosqlite",
    "asyncpg",
    "httpx",
    "fastapi",
    "starlette",
    "uvicorn",
    "docmill.api",
    "docmill.queue",
    "docmill.db",
    "docmill.parsing.engine",
]


def unconfigured_environment(**variables: str) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.upper().startswith("DOCMILL_")
    }
    return env | variables


def run_probe(
    *args: str, env: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    modules: set[str] = set()
    for line in done.stderr.splitlines():
        if line.startswith("MODULES "):
            modules = set(line.split()[1:])
    return done, modules


def loaded(modules: set[str], packages: list[str]) -> list[str]:
    return [
        package
        for package in packages
        if any(name == package or name.startswith(package + ".") for name in modules)
    ]


@pytest.fixture
def small_text(tmp_path: Path) -> Path:
    path = tmp_path / "note.txt"
    path.write_text("A short note about the quarterly figures.\n")
    return path


def test_extract_loads_no_service_stack_when_nothing_is_configured(
    small_text: Path,
) -> None:
    done, modules = run_probe(
        "extract", str(small_text), env=unconfigured_environment()
    )

    assert done.returncode == 0, done.stderr
    assert "docmill.local" in modules
    # pydantic here means Typer converted a value itself: a Typer release
    # changed what docmill._cli_values hooks into.
    assert loaded(modules, [*SERVICE_STACK, "rich", "asyncio", "multiprocessing"]) == []


def test_help_loads_no_service_stack() -> None:
    done, modules = run_probe("--help", env=unconfigured_environment())

    assert done.returncode == 0, done.stderr
    assert "typer" in modules
    assert loaded(modules, [*SERVICE_STACK, "asyncio"]) == []


def test_extract_reads_settings_when_a_variable_is_set(small_text: Path) -> None:
    env = unconfigured_environment(DOCMILL_MAX_TEXT_CHARS="7")

    done, modules = run_probe("extract", str(small_text), env=env)

    record = json.loads(done.stdout)
    assert record["result"]["text"] == "A short"
    assert "pydantic_settings" in modules


def test_extract_reports_an_invalid_setting(small_text: Path) -> None:
    env = unconfigured_environment(DOCMILL_JOB_MEMORY_MB="lots")

    done, _modules = run_probe("extract", str(small_text), env=env)

    assert (done.returncode, done.stdout) == (2, "")
    assert "job_memory_mb" in done.stderr
    assert "Traceback" not in done.stderr


def test_extract_runs_with_an_empty_data_dir_variable(small_text: Path) -> None:
    """Refused, though extract keeps nothing in a data directory."""
    env = unconfigured_environment(DOCMILL_DATA_DIR="")

    done, _modules = run_probe("extract", str(small_text), env=env)

    assert (done.returncode, json.loads(done.stdout)["status"]) == (0, "completed")


def extract_at_a_terminal(path: Path, stdout: Any) -> bytes:
    """Run ``docmill extract path`` with stderr on a terminal; what it showed."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "docmill", "extract", str(path)],
        stdout=stdout,
        stderr=terminal,
        env=unconfigured_environment(TERM="xterm-256color"),
    )
    os.close(terminal)
    screen = b""
    try:
        while chunk := _read(controller):
            screen += chunk
    finally:
        os.close(controller)
    assert process.wait(timeout=120) == 0
    return screen


def test_extract_draws_a_progress_bar_on_a_terminal(small_text: Path) -> None:
    """Rich, left out above, still draws the bar when stderr is a terminal."""
    screen = extract_at_a_terminal(small_text, subprocess.DEVNULL)

    assert b"extracting" in screen


def test_extract_on_a_terminal_still_writes_results_to_redirected_stdout(
    small_text: Path, tmp_path: Path
) -> None:
    """``docmill extract files > results.jsonl`` typed at a terminal."""
    results = tmp_path / "results.jsonl"
    with results.open("wb") as stdout:
        screen = extract_at_a_terminal(small_text, stdout)

    records = [json.loads(line) for line in results.read_text().splitlines()]
    assert [(r["path"], r["status"]) for r in records] == [
        (str(small_text), "completed")
    ]
    assert b"quarterly" not in screen


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO: every writer has closed the terminal
        return b""


# Names each Click command Typer builds as it builds it (`extract` leaves by
# os._exit, so nothing can be said at the end), then runs the CLI.
CONVERSIONS = """
import sys
import typer.main
convert = typer.main.get_command_from_info
def reporting(command_info, **options):
    command = convert(command_info, **options)
    sys.stderr.write("\\nBUILT " + str(command.name) + "\\n")
    return command
typer.main.get_command_from_info = reporting
sys.argv = ["docmill", *sys.argv[1:]]
from docmill.cli import main
main()
"""


def commands_built(*args: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", CONVERSIONS, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=unconfigured_environment(),
    )
    built = [
        line.split()[1]
        for line in done.stderr.splitlines()
        if line.startswith("BUILT ")
    ]
    return done, built


def test_a_named_command_is_the_only_one_built(small_text: Path) -> None:
    done, built = commands_built("extract", str(small_text))

    assert done.returncode == 0, done.stderr
    assert built == ["extract"]


def test_a_named_group_builds_only_its_own_commands() -> None:
    done, built = commands_built("db", "--help")

    assert done.returncode == 0, done.stderr
    assert "upgrade" in built
    assert "extract" not in built and "serve" not in built


def test_help_of_the_whole_command_still_lists_every_command() -> None:
    done, built = commands_built("--help")

    assert done.returncode == 0, done.stderr
    assert {"extract", "serve", "worker", "upgrade"} <= set(built)
    assert "extract" in done.stdout and "serve" in done.stdout


def test_a_lone_command_keeps_its_name_in_usage_errors() -> None:
    done, _built = commands_built("extract")

    assert done.returncode == 2
    assert "Usage: docmill extract" in done.stderr
