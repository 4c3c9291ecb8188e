"""
The one middleware of the API: request ids, timing, metrics, the access log.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from docmill import metrics
from docmill.api.ratelimit import SCOPE_KEY
from docmill.log import request_id_var

logger = logging.getLogger("docmill.access")

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# On every answer: a browser must take each content type as sent, never guess
# script or HTML from a JSON, text or original's body.
_NOSNIFF = (b"x-content-type-options", b"nosniff")


class RequestContextMiddleware:
    """
    Give every request an id, report how long it took, and count it.

    A caller's ``X-Request-ID`` is kept when it is a short token, so ids can be
    followed across services; otherwise a new one is made. Both headers are
    added to the response, and the id is on every log line the request causes.
    Each request is counted under its route template
    (``/documents/{document_id}``), never its raw path, so label values stay
    few whatever ids are requested. ``POST /documents`` and ``GET /documents``
    go through ``ParserHooks``.

    This was four layers (ids and timing, metrics, parser hooks); each one
    wrapped ``send`` again and cost about as much as a short endpoint. Written
    as plain ASGI because BaseHTTPMiddleware would buffer streamed responses.

    Args:
        app: the application it wraps.
    """

    def __init__(self, app: ASGIApp) -> None:
        from docmill.api.parsers import ParserHooks

        self.app = app
        self.documents = ParserHooks(app)
        # (method, route template, status) -> the metric children to update
        self._counted: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        given = b""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                given = value
        request_id = given.decode("latin-1")
        if not _VALID_REQUEST_ID.match(request_id):
            request_id = f"{random.getrandbits(64):016x}"
        token = request_id_var.set(request_id)
        status = 500
        started_response = False
        granted: list[tuple[bytes, bytes]] = []
        scope[SCOPE_KEY] = granted

        async def send_with_headers(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                started_response = True
                status = message["status"]
                elapsed = time.perf_counter() - started
                headers = list(message.get("headers", []))
                if granted and status >= 400 and not _rate_limited(headers):
                    # An error the endpoint raised, answered by a handler.
                    headers.extend(granted)
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                headers.append((b"x-process-time", f"{elapsed:.6f}".encode("latin-1")))
                headers.append(_NOSNIFF)
                message["headers"] = headers
            await send(message)

        app_scope, app_receive = scope, receive
        app_send: Send = send_with_headers
        if scope["method"] == "HEAD":
            app_scope, app_receive, app_send = _as_get(
                scope, receive, send_with_headers
            )
        try:
            if _has_nul(scope):
                status = 400
                await _send_problem(
                    send_with_headers,
                    scope,
                    400,
                    "bad-request",
                    "NUL characters are not allowed in URLs",
                )
            elif scope["path"].rstrip("/") == "/documents":
                await self.documents(app_scope, app_receive, app_send)
            else:
                await self.app(app_scope, app_receive, app_send)
        except ClientDisconnect:
            # The client went away mid-request; there is no one to answer.
            status = 499
        except Exception:
            # Answer like every other error (problem+json, with the request
            # id) instead of the server's bare text 500, and log it once.
            logger.exception(
                "unhandled error in %s %s", scope["method"], _printable(scope)
            )
            status = 500
            if not started_response:
                await _send_problem(
                    send_with_headers,
                    scope,
                    500,
                    "internal",
                    f"an unexpected error occurred; quote request id {request_id}",
                )
        finally:
            elapsed = time.perf_counter() - started
            # The router notes the route in the scope it was given.
            counted = scope if app_scope is scope else {**app_scope, "method": "HEAD"}
            self._count(counted, status, elapsed)
            if logger.isEnabledFor(logging.INFO):
                logger.info(
                    "%s %s %d %.1fms",
                    scope["method"],
                    _printable(scope),
                    status,
                    elapsed * 1000,
                    extra={"action": "http_request", "status_code": status},
                )
            request_id_var.reset(token)

    def _count(self, scope: Scope, status: int, elapsed: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        key = (scope["method"], template, status)
        children = self._counted.get(key)
        if children is None:
            # A handful of keys: methods x route templates x status codes.
            children = self._counted[key] = (
                metrics.HTTP_REQUESTS.labels(key[0], template, str(status)),
                metrics.HTTP_LATENCY.labels(key[0], template),
            )
        children[0].inc()
        children[1].observe(elapsed)


def _as_get(scope: Scope, receive: Receive, send: Send) -> tuple[Scope, Receive, Send]:
    """
    HEAD answered as the GET it mirrors, with the same status and headers
    and no body (RFC 9110 9.3.2), for every GET route at no cost per route:
    FastAPI routes a HEAD only where one is declared, so load balancers and
    link checkers got 405 everywhere but /healthz.

    Once the headers are sent the app is told the client went away, so a
    stream (an original, a document's events) stops instead of running on
    to a body no one reads.
    """
    started = False

    async def receive_until_answered() -> Message:
        if started:
            return {"type": "http.disconnect"}
        return await receive()

    async def send_headers_only(message: Message) -> None:
        nonlocal started
        if message["type"] == "http.response.start":
            started = True
            await send(message)
            await send({"type": "http.response.body", "body": b""})
        elif message["type"] != "http.response.body":
            await send(message)

    return {**scope, "method": "GET"}, receive_until_answered, send_headers_only


def _printable(scope: Scope) -> str:
    # The decoded path may hold newlines (%0A) that would forge log lines.
    path: str = scope["path"]
    return path.encode("unicode_escape").decode("ascii")


def _rate_limited(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(name.lower() == b"ratelimit-limit" for name, _ in headers)


def _has_nul(scope: Scope) -> bool:
    query: bytes = scope.get("query_string", b"")
    return "\x00" in scope["path"] or b"%00" in query.lower()


async def _send_problem(
    send: Send, scope: Scope, status: int, slug: str, detail: str
) -> None:
    from http import HTTPStatus

    from docmill.api.problems import PROBLEM_TYPE_PREFIX

    body = json.dumps(
        {
            "type": PROBLEM_TYPE_PREFIX + slug,
            "title": HTTPStatus(status).phrase,
            "status": status,
            "detail": detail,
            "instance": _printable(scope),
        },
        # As JSONResponse writes every other problem, byte for byte.
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
