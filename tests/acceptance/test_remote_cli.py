"""``docmill submit`` and ``status`` against a server that comes and goes."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.servers import Handler, LocalServer, Route
from tests.support import api_document


def document(status: str) -> bytes:
    """A document as the API shows it, with ``status``."""
    return json.dumps(api_document(status)).encode()


def answering(status: int, body: bytes, seen: threading.Event | None = None) -> Route:
    def route(handler: Handler) -> None:
        handler.answer(status, body, {"Content-Type": "application/json"})
        if seen is not None:
            seen.set()

    return route


class StandIn:
    """A stand-in API on 127.0.0.1 that a test can stop, as a kill would."""

    def __init__(self, port: int, routes: dict[str, Route]) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port: int = self.httpd.server_address[1]
        self.httpd.state = LocalServer(self.port, routes)  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join()


@contextmanager
def api_on(port: int, routes: dict[str, Route]) -> Iterator[StandIn]:
    """A stand-in API on 127.0.0.1:``port`` (0: any free port)."""
    api = StandIn(port, routes)
    try:
        yield api
    finally:
        api.stop()


@contextmanager
def submitting(path: Path, port: int, *options: str) -> Iterator[subprocess.Popen[str]]:
    """``docmill submit PATH --wait`` to 127.0.0.1:``port``, killed if left running."""
    server = f"http://127.0.0.1:{port}"
    command = ["submit", str(path), "--wait", "--server", server, *options]
    with subprocess.Popen(
        [sys.executable, "-m", "docmill.cli", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as running:
        try:
            yield running
        finally:
            running.kill()


def test_submit_wait_rides_out_a_server_restart(tmp_path: Path) -> None:
    """
    A --wait that lost the server ended with nothing printed, though the
    document went on to complete, so the user submitted it again.
    """
    (tmp_path / "a.txt").write_text("alpha")
    polled = threading.Event()
    first = {
        "/documents": answering(202, document("pending")),
        "/documents/doc-1": answering(200, document("processing"), polled),
    }
    again = {"/documents/doc-1": answering(200, document("completed"))}
    with api_on(0, first) as api, submitting(tmp_path / "a.txt", api.port) as running:
        assert polled.wait(30)
        api.stop()
        # Away for longer than a poll, as a restart is.
        time.sleep(1.5)
        with api_on(api.port, again):
            stdout, stderr = running.communicate(timeout=60)

    assert (running.returncode, json.loads(stdout)["status"]) == (0, "completed")
    assert f"submitted {tmp_path / 'a.txt'}: doc-1" in stderr


def test_submit_wait_names_what_is_unfinished_when_it_gives_up(
    tmp_path: Path,
) -> None:
    (tmp_path / "a.txt").write_text("alpha")
    polled = threading.Event()
    routes = {
        "/documents": answering(202, document("pending")),
        "/documents/doc-1": answering(200, document("processing"), polled),
    }
    with (
        api_on(0, routes) as api,
        submitting(tmp_path / "a.txt", api.port, "--reconnect-seconds", "1") as running,
    ):
        assert polled.wait(30)
        api.stop()
        stdout, stderr = running.communicate(timeout=60)

    assert (running.returncode, stdout) == (1, "")
    assert f"not final yet: doc-1 ({tmp_path / 'a.txt'})" in stderr
    assert "Traceback" not in stderr


def test_submit_sends_no_device(tmp_path: Path) -> None:
    """``submit /dev/zero`` streamed zeros until it failed with a traceback."""
    (tmp_path / "a.txt").write_text("alpha")
    routes = {"/documents": answering(202, document("pending"))}

    with api_on(0, routes) as api:
        server = f"http://127.0.0.1:{api.port}"
        files = ["/dev/zero", str(tmp_path / "a.txt")]
        done = subprocess.run(
            [sys.executable, "-m", "docmill.cli", "submit", *files, "--server", server],
            capture_output=True,
            text=True,
            timeout=30,
        )

    assert (done.returncode, json.loads(done.stdout)["id"]) == (1, "doc-1")
    assert done.stderr == (
        "docmill: /dev/zero: not a regular file (a device, pipe or socket); not sent\n"
    )


def submit_denied(*args: str) -> subprocess.CompletedProcess[str]:
    """``docmill submit ARGS``, with paths named "noperm..." unreadable."""
    from tests.acceptance.test_cli import DENYING_LAUNCHER

    return subprocess.run(
        [sys.executable, "-c", DENYING_LAUNCHER, "submit", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize(
    ("name", "line"),
    [
        pytest.param(
            "folder",
            "cannot send {}: it is a directory; submit takes files",
            id="directory",
        ),
        # Made unreadable by the launcher: root reads a file whatever its mode.
        pytest.param(
            "noperm.txt", "cannot read {}: Permission denied", id="unreadable"
        ),
        pytest.param(
            "gone.txt", "cannot read {}: No such file or directory", id="missing"
        ),
    ],
)
def test_submit_refuses_a_path_it_cannot_send_in_one_line(
    tmp_path: Path, name: str, line: str
) -> None:
    """Typer's boxed usage error said "invalid value" and not why."""
    (tmp_path / "folder").mkdir()
    (tmp_path / "noperm.txt").write_text("secret")
    (tmp_path / "ok.txt").write_text("fine")
    path = tmp_path / name

    # Nothing listens there: a refusal must come before any connection.
    done = submit_denied(
        str(tmp_path / "ok.txt"), str(path), "--server", "http://127.0.0.1:1"
    )

    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"docmill: {line.format(path)}\n"


def test_status_refuses_an_empty_id() -> None:
    """It asked for the list's address and showed "HTTP 307: {'detail': ''}"."""
    done = subprocess.run(
        [sys.executable, "-m", "docmill.cli", "status", ""],
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert (done.returncode, done.stderr) == (
        2,
        "docmill: a document id must not be empty\n",
    )


def test_client_keeps_a_document_id_in_one_path_segment() -> None:
    """An id holding "/" or "?" reached another route of the API."""
    from docmill.client import ApiError, Client

    with api_on(0, {}) as api, Client(f"http://127.0.0.1:{api.port}") as client:
        with pytest.raises(ApiError):
            client.get("../keys?x=1")

        assert [r.path for r in api.httpd.state.received] == [
            "/documents/..%2Fkeys%3Fx%3D1"
        ]


def test_submit_refuses_a_negative_wait(tmp_path: Path) -> None:
    """``--timeout -5`` was taken, and "not final after -5.0s" followed."""
    document = tmp_path / "ok.txt"
    document.write_text("fine")

    command = ["submit", str(document), "--wait", "--timeout", "-5"]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "docmill.cli",
            *command,
            "--server",
            "http://127.0.0.1:1",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert (done.returncode, done.stdout) == (2, "")
    assert "--timeout" in done.stderr
