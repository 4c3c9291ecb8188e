"""Request ids, timing and one access log line per request."""

from __future__ import annotations

import json
import logging
import re
import secrets
import time

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from docmill.log import request_id_var

logger = logging.getLogger("docmill.access")

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestContextMiddleware:
    """
    Give every request an id and report how long it took.

    A caller's ``X-Request-ID`` is kept when it is a short token, so ids can be
    followed across services; otherwise a new one is made. Both headers are
    added to the response, and the id is on every log line the request causes.
    Written as plain ASGI because BaseHTTPMiddleware would buffer streamed
    responses.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _VALID_REQUEST_ID.match(given) else secrets.token_hex(8)
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        started_response = False

        async def send_with_headers(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                started_response = True
                status = message["status"]
                elapsed = time.perf_counter() - started
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                headers.append((b"x-process-time", f"{elapsed:.6f}".encode("latin-1")))
                message["headers"] = headers
            await send(message)

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
            else:
                await self.app(scope, receive, send_with_headers)
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
            logger.info(
                "%s %s %d %.1fms",
                scope["method"],
                _printable(scope),
                status,
                (time.perf_counter() - started) * 1000,
                extra={"action": "http_request", "status_code": status},
            )
            request_id_var.reset(token)


def _printable(scope: Scope) -> str:
    # The decoded path may hold newlines (%0A) that would forge log lines.
    path: str = scope["path"]
    return path.encode("unicode_escape").decode("ascii")


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
        }
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
