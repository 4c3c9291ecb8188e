"""Small HTTP servers on 127.0.0.1 that tests start: file server, webhook receiver."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Route = Callable[["Handler"], None]


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class LocalServer:
    port: int
    routes: dict[str, Route]
    received: list[Received] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


class Handler(BaseHTTPRequestHandler):
    server: Any

    def answer(
        self, status: int, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self) -> None:
        state: LocalServer = self.server.state
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        state.received.append(Received(self.path, dict(self.headers.items()), body))
        route = state.routes.get(self.path)
        if route is None:
            self.answer(404, b"not here")
        else:
            route(self)

    do_GET = _handle
    do_POST = _handle

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def local_server(routes: dict[str, Route]) -> Iterator[LocalServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state = LocalServer(httpd.server_address[1], routes)
    httpd.state = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
