"""``docmill extract``: local batch extraction with the workers' code path."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from docmill.cli import app
from tests.odsfiles import wide_ods


def run_extract(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "docmill.cli", "extract", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_extract_writes_one_json_line_per_file(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("alpha beta")
    (tmp_path / "b.txt").write_text("gamma")

    done = run_extract(str(tmp_path))

    records = sorted(
        (json.loads(line) for line in done.stdout.splitlines()),
        key=lambda r: r["path"],
    )
    assert [(r["status"], r["result"]["text"]) for r in records] == [
        ("completed", "alpha beta"),
        ("completed", "gamma"),
    ]
    assert done.returncode == 0


def test_extract_exits_non_zero_when_a_file_fails(tmp_path: Path) -> None:
    (tmp_path / "empty.pdf").write_bytes(b"")
    (tmp_path / "fine.txt").write_text("fine")

    done = run_extract(str(tmp_path))

    failed = [json.loads(line) for line in done.stdout.splitlines()]
    failed = [r for r in failed if r["status"] == "failed"]
    assert [(r["error"]["code"]) for r in failed] == ["empty"]
    assert done.returncode == 1
    assert "1 completed, 1 failed" in done.stderr


def test_extract_text_format_prints_text_under_headers(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("alpha")

    done = run_extract("--format", "text", str(tmp_path / "a.txt"))

    assert done.stdout == f"==> {tmp_path / 'a.txt'} <==\nalpha\n\n"


def test_extract_reads_text_files_in_the_charset_given(tmp_path: Path) -> None:
    """Short Greek in cp1253, detected, read as cp1252: "ÃåéÜ óïõ"."""
    greek = "\u0393\u03b5\u03b9\u03ac \u03c3\u03bf\u03c5"  # "Hello" in Greek
    (tmp_path / "el.txt").write_bytes(greek.encode("cp1253"))

    done = run_extract("--charset", "windows-1253", str(tmp_path / "el.txt"))

    result = json.loads(done.stdout)["result"]
    assert (result["text"], result["metadata"]["encoding"]) == (greek, "cp1253")


def test_extract_refuses_a_charset_that_is_no_text_encoding(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("alpha")

    done = run_extract("--charset", "base64", str(tmp_path / "a.txt"))

    assert (done.returncode, done.stdout) == (2, "")
    assert "unknown charset 'base64'" in done.stderr


def test_invalid_setting_is_a_usage_error_without_traceback_or_value(
    tmp_path: Path,
) -> None:
    environment = {
        **os.environ,
        "DOCMILL_WORKERS": "s3cret-not-a-number",
        "DOCMILL_DATA_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "docmill.cli", "serve"],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
    )

    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "workers (DOCMILL_WORKERS or its option)" in done.stderr
    assert "valid integer" in done.stderr
    # The value may be a secret: it is never echoed back.
    assert "s3cret" not in done.stderr


@pytest.mark.parametrize(
    "variable",
    [
        pytest.param("DOCMILL_FETCH_ALLOW_NETWORKS", id="fetch-allow-networks"),
        pytest.param("DOCMILL_TRUSTED_PROXIES", id="trusted-proxies"),
    ],
)
@pytest.mark.parametrize(
    "command",
    [
        pytest.param(["serve"], id="serve"),
        pytest.param(["worker", "--once"], id="worker"),
    ],
)
def test_a_network_that_does_not_parse_stops_the_start(
    tmp_path: Path, variable: str, command: list[str]
) -> None:
    environment = {
        **os.environ,
        variable: '["10.0.0.0/8", "intranet"]',
        "DOCMILL_DATA_DIR": str(tmp_path),
        # A serve that started anyway would hold a port until the timeout.
        "DOCMILL_HOST": "127.0.0.1",
        "DOCMILL_PORT": "23001",
    }
    done = subprocess.run(
        [sys.executable, "-m", "docmill.cli", *command],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
    )

    assert (done.returncode, "Traceback" in done.stderr) == (2, False)
    assert f"({variable} or its option)" in done.stderr
    assert "'intranet' does not appear to be an IPv4 or IPv6 network" in done.stderr


def test_submit_to_a_server_that_is_not_there_says_so(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (tmp_path / "a.txt").write_text("alpha")
    server = f"http://127.0.0.1:{port}"

    for verb in (["submit", str(tmp_path / "a.txt")], ["status", "some-id"]):
        done = subprocess.run(
            [sys.executable, "-m", "docmill.cli", *verb, "--server", server],
            capture_output=True,
            text=True,
            timeout=120,
        )

        assert done.returncode == 1
        assert f"cannot reach the docmill server at {server}" in done.stderr
        assert "Traceback" not in done.stderr


def extract_outcomes(
    arguments: list[str], environment: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run ``docmill`` with ``arguments``; each record's outcome, by path."""
    done = subprocess.run(
        [sys.executable, "-m", "docmill.cli", *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
    )
    records = sorted(
        (json.loads(line) for line in done.stdout.splitlines()),
        key=lambda r: r["path"],
    )
    return done, [r.get("error", {}).get("code", r["status"]) for r in records]


def test_extract_contains_timeouts_and_crashes_per_file(tmp_path: Path) -> None:
    """Each file gets its own deadline and killable child, on every slot."""
    (tmp_path / "1-stall").write_bytes(b"DOCMILL-TEST-STALL 30\nnever")
    (tmp_path / "2-crash").write_bytes(b"DOCMILL-TEST-CRASH")
    (tmp_path / "3-fine.txt").write_text("fine")
    (tmp_path / "4-slow").write_bytes(b"DOCMILL-TEST-SLEEP 0.3\nslow but in time")
    environment = {
        **os.environ,
        "DOCMILL_EXTRACTOR_PLUGINS": '["docmill.testing"]',
    }

    for jobs in ("1", "2"):
        command = ["extract", "-j", jobs, "--timeout", "2", "--no-text"]
        done, outcomes = extract_outcomes([*command, str(tmp_path)], environment)

        assert outcomes == ["timeout", "worker_crash", "completed", "completed"]
        assert done.returncode == 1
        assert "2 completed, 2 failed" in done.stderr


def test_extract_reports_a_missing_file_as_unreadable(tmp_path: Path) -> None:
    done = run_extract(str(tmp_path / "gone.pdf"))

    record = json.loads(done.stdout)
    assert (record["status"], record["error"]["code"]) == ("failed", "unreadable")
    assert "sha256" not in record
    assert done.returncode == 1


def test_extract_children_go_when_extract_is_killed(tmp_path: Path) -> None:
    """
    A child forked by extract held its parent's socket end and lived on.

    It waited for its next document forever; now it finds its parent gone as
    soon as it is done with the one at hand.
    """
    import signal

    parent = start_stalled_extract(tmp_path, seconds=1)
    try:
        children = _wait_for(lambda: _children_of(parent.pid))
    finally:
        parent.kill()
        parent.wait()

    try:
        assert _wait_for(lambda: not any(_running(pid) for pid in children))
    finally:
        for pid in children:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)


def start_stalled_extract(tmp_path: Path, seconds: float) -> subprocess.Popen[bytes]:
    """``docmill extract`` on a document whose reading stalls ``seconds``."""
    (tmp_path / "stall").write_bytes(f"DOCMILL-TEST-STALL {seconds}\nlate".encode())
    environment = {**os.environ, "DOCMILL_EXTRACTOR_PLUGINS": '["docmill.testing"]'}
    return subprocess.Popen(
        [sys.executable, "-m", "docmill.cli", "extract", str(tmp_path / "stall")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=environment,
    )


def _wait_for(check: Any, seconds: float = 10) -> Any:
    import time

    deadline = time.monotonic() + seconds
    while not (result := check()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return result


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _stat(int(entry.name))[1:2] == [str(pid)]:
            found.append(int(entry.name))
    return found


def _running(pid: int) -> bool:
    """Alive and not a zombie (a container's init may never reap it)."""
    return _stat(pid)[:1] not in ([], ["Z"])


def _stat(pid: int) -> list[str]:
    """State and parent pid of ``pid``; empty when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    return text.rsplit(")", 1)[1].split()[:2]


def test_extract_refuses_an_ods_too_wide_for_memory_without_a_crash(
    tmp_path: Path,
) -> None:
    # Before the ODS grid guard, calamine aborted the child (SIGABRT, a Rust
    # backtrace on stderr) and the file ended as worker_crash.
    (tmp_path / "wide.ods").write_bytes(wide_ods())

    done = run_extract("--no-text", str(tmp_path / "wide.ods"))

    record = json.loads(done.stdout)
    assert record["error"]["code"] == "limit_exceeded"
    assert "'Wide' spans 5000 rows by 16384 columns" in record["error"]["message"]
    assert done.returncode == 1
    assert "backtrace" not in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("command", "usage", "name"),
    [
        pytest.param(["extract"], "PATHS...", "PATHS", id="extract"),
        pytest.param(["submit"], "FILES...", "FILES", id="submit"),
        pytest.param(["status"], "DOCUMENT_ID", "DOCUMENT_ID", id="status"),
        pytest.param(["keys", "create"], "NAME", "NAME", id="keys-create"),
        pytest.param(["keys", "revoke"], "KEY_ID", "KEY_ID", id="keys-revoke"),
        pytest.param(["parsers", "apply"], "FILES...", "FILES", id="parsers-apply"),
        pytest.param(["parsers", "delete"], "NAME", "NAME", id="parsers-delete"),
        pytest.param(["parse"], "DOCUMENTS...", "DOCUMENTS", id="parse"),
    ],
)
def test_a_missing_argument_is_named_as_the_usage_line_names_it(
    command: list[str], usage: str, name: str
) -> None:
    done = CliRunner().invoke(app, command)
    lines = done.stderr.splitlines()

    assert done.exit_code == 2
    assert lines[0].endswith(f" [OPTIONS] {usage}")
    assert f"Missing argument '{name}'." in done.stderr


def test_extract_prints_a_lone_surrogate_as_a_replacement(tmp_path: Path) -> None:
    """A result holding one once ended the run with a traceback."""
    (tmp_path / "a.json").write_bytes(b'{"a":"\\ud800"}')
    (tmp_path / "b.txt").write_text("fine")

    done = run_extract(str(tmp_path))

    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert sorted((r["status"], r["result"]["text"]) for r in records) == [
        ("completed", "a: \ufffd"),
        ("completed", "fine"),
    ]
    assert done.returncode == 0


def test_extract_reports_a_result_stdout_cannot_take_per_file(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("café", encoding="utf-8")
    (tmp_path / "b.txt").write_text("plain")
    environment = {**os.environ, "PYTHONIOENCODING": "ascii"}

    done, outcomes = extract_outcomes(["extract", str(tmp_path)], environment)

    assert outcomes == ["unwritable", "completed"]
    assert done.returncode == 1
    assert "Traceback" not in done.stderr


def test_extract_escapes_a_name_stdout_cannot_take(tmp_path: Path) -> None:
    """The name is docmill's to escape; the text stays exactly as read."""
    (tmp_path / "ü.txt").write_text("plain", encoding="utf-8")
    (tmp_path / "é.txt").write_text("café", encoding="utf-8")
    environment = {**os.environ, "PYTHONIOENCODING": "ascii"}

    done, outcomes = extract_outcomes(["extract", str(tmp_path)], environment)

    assert (outcomes, done.returncode) == (["unwritable", "completed"], 1)
    assert "Traceback" not in done.stderr
    assert done.stderr.endswith(": 1 completed, 1 failed\n")
    assert f'"path": "{tmp_path}/\\u00fc.txt"' in done.stdout


def test_extract_text_escapes_a_name_in_its_header(tmp_path: Path) -> None:
    (tmp_path / "ü.txt").write_text("plain", encoding="utf-8")
    environment = {**os.environ, "PYTHONIOENCODING": "ascii"}

    done = subprocess.run(
        [sys.executable, "-m", "docmill.cli", "extract", "-f", "text", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
    )

    assert done.stdout == f"==> {tmp_path}/\\xfc.txt <==\nplain\n\n"
    assert done.returncode == 0


def test_extract_names_a_file_whose_name_is_not_utf8(tmp_path: Path) -> None:
    (tmp_path / os.fsdecode(b"bad\xff.txt")).write_text("odd name")

    done = run_extract(str(tmp_path))

    record = json.loads(done.stdout)
    assert (record["status"], record["path"]) == (
        "completed",
        f"{tmp_path}/bad\ufffd.txt",
    )


def test_extract_gives_the_bytes_of_a_name_that_is_not_utf8(tmp_path: Path) -> None:
    """``path`` alone, with U+FFFD for the odd byte, could not find the file."""
    odd = tmp_path / os.fsdecode(b"bad\xff.txt")
    odd.write_text("odd name")

    done = run_extract(str(tmp_path))

    record = json.loads(done.stdout)
    assert base64.b64decode(record["path_bytes"]) == os.fsencode(odd)


def test_extract_refuses_a_device_per_file(tmp_path: Path) -> None:
    """``/dev/zero`` was read, and hashed, for ever, with nothing printed."""
    (tmp_path / "fine.txt").write_text("fine")

    done = subprocess.run(
        [sys.executable, "-m", "docmill.cli", "extract", "/dev/zero", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
    )

    records = [json.loads(line) for line in done.stdout.splitlines()]
    outcomes = {r["path"]: r.get("error", {}).get("code", r["status"]) for r in records}
    assert outcomes == {
        "/dev/zero": "unreadable",
        str(tmp_path / "fine.txt"): "completed",
    }
    assert done.returncode == 1


# Run as root, as tests may be, the kernel lets every file be read: this
# launcher makes the paths named "noperm..." unreadable as EACCES would.
DENYING_LAUNCHER = """
import builtins, errno, os, sys

def denied(path):
    return os.path.basename(os.fsdecode(path)).startswith("noperm")

def refuse(path):
    raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fsdecode(path))

real_access, real_scandir, real_open = os.access, os.scandir, builtins.open
os.access = lambda path, *a, **k: not denied(path) and real_access(path, *a, **k)
os.scandir = lambda path=".": refuse(path) if denied(path) else real_scandir(path)
builtins.open = lambda f, *a, **k: refuse(f) if denied(f) else real_open(f, *a, **k)
sys.argv[0] = "docmill"
from docmill.cli import main
main()
"""


def extract_denied(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", DENYING_LAUNCHER, "extract", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def outcomes_of(done: subprocess.CompletedProcess[str]) -> dict[str, str]:
    records = [json.loads(line) for line in done.stdout.splitlines()]
    return {r["path"]: r.get("error", {}).get("code", r["status"]) for r in records}


def test_extract_reports_unreadable_paths_per_file(tmp_path: Path) -> None:
    """One unreadable path was a usage error that stopped the whole run."""
    (tmp_path / "ok.txt").write_text("fine")
    (tmp_path / "noperm.txt").write_text("secret")
    (tmp_path / "nopermdir").mkdir()
    (tmp_path / "nopermdir" / "inside.txt").write_text("hidden")
    named = [tmp_path / "ok.txt", tmp_path / "noperm.txt", tmp_path / "nopermdir"]

    done = extract_denied(*map(str, named))

    assert outcomes_of(done) == {
        str(tmp_path / "ok.txt"): "completed",
        str(tmp_path / "noperm.txt"): "unreadable",
        str(tmp_path / "nopermdir"): "unreadable",
    }
    assert (done.returncode, "1 completed, 2 failed" in done.stderr) == (1, True)


def test_extract_summary_counts_unlisted_directories_apart(tmp_path: Path) -> None:
    """A directory it could not list was counted as one more file."""
    (tmp_path / "ok.txt").write_text("fine")
    (tmp_path / "noperm.txt").write_text("secret")
    (tmp_path / "nopermdir").mkdir()
    named = [tmp_path / "ok.txt", tmp_path / "noperm.txt", tmp_path / "nopermdir"]

    done = extract_denied(*map(str, named))

    [summary] = done.stderr.splitlines()
    assert summary.startswith("2 file(s) and 1 unlisted directory in ")
    assert summary.endswith(": 1 completed, 2 failed")


@pytest.mark.skipif(
    os.geteuid() == 0, reason="root reads a file whatever its permissions"
)
def test_extract_reports_a_file_without_read_permission(tmp_path: Path) -> None:
    (tmp_path / "ok.txt").write_text("fine")
    (tmp_path / "locked.txt").write_text("secret")
    (tmp_path / "locked.txt").chmod(0)

    done = run_extract(str(tmp_path / "ok.txt"), str(tmp_path / "locked.txt"))

    assert outcomes_of(done) == {
        str(tmp_path / "ok.txt"): "completed",
        str(tmp_path / "locked.txt"): "unreadable",
    }


def test_extract_walk_reports_what_it_cannot_read(tmp_path: Path) -> None:
    """A walk dropped these without a word; named, each was ``unreadable``."""
    import socket

    tree = tmp_path / "t"
    tree.mkdir()
    (tree / "fine.txt").write_text("fine")
    (tree / "dangling").symlink_to(tree / "gone")
    (tree / "loop").symlink_to(tree / "loop")
    (tree / "null").symlink_to("/dev/null")
    (tree / "linked-dir").symlink_to(tmp_path)
    os.mkfifo(tree / "fifo")
    (tree / "nopermsub").mkdir()
    (tree / "nopermsub" / "inside.txt").write_text("hidden")
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(tree / "sock"))

        done = extract_denied(str(tree))

    assert outcomes_of(done) == {
        str(tree / name): "unreadable"
        for name in ("dangling", "loop", "null", "linked-dir", "fifo", "nopermsub")
    } | {str(tree / "sock"): "unreadable", str(tree / "fine.txt"): "completed"}
    assert "1 completed, 7 failed" in done.stderr


def test_extract_refuses_an_empty_path(tmp_path: Path) -> None:
    """``extract "$DIR"`` with DIR unset read the current directory, recursively."""
    (tmp_path / "a.txt").write_text("not to be read")

    done = subprocess.run(
        [sys.executable, "-m", "docmill.cli", "extract", ""],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )

    assert (done.returncode, done.stdout) == (2, "")
    assert "a path must not be empty" in done.stderr


def test_extract_caps_jobs_at_four_per_core(tmp_path: Path) -> None:
    """``--jobs 500`` started 340 processes on two cores."""
    (tmp_path / "a.txt").write_text("alpha")

    done = run_extract("--jobs", "500", str(tmp_path / "a.txt"))

    cap = 4 * (os.cpu_count() or 1)
    assert f"--jobs is capped at 4 per core; using {cap}" in done.stderr
    assert done.returncode == 0


def test_extract_interrupted_says_what_it_did(tmp_path: Path) -> None:
    """Ctrl-C ended the run with exit 130 and no summary."""
    import signal
    import time

    (tmp_path / "1-fine.txt").write_text("fine")
    (tmp_path / "2-stall").write_bytes(b"DOCMILL-TEST-STALL 30\nnever")
    environment = {**os.environ, "DOCMILL_EXTRACTOR_PLUGINS": '["docmill.testing"]'}
    command = [sys.executable, "-m", "docmill.cli", "extract", "-j", "1"]
    with subprocess.Popen(
        [*command, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    ) as running:
        try:
            # The first line out means the stalling file is being read.
            assert running.stdout is not None
            assert json.loads(running.stdout.readline())["status"] == "completed"
            time.sleep(0.2)
            running.send_signal(signal.SIGINT)
            _, stderr = running.communicate(timeout=30)
        finally:
            running.kill()

    assert running.returncode == 130
    assert "interrupted after 1 of 2 file(s) in " in stderr
    assert stderr.endswith(": 1 completed, 0 failed\n")
