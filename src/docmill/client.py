"""
A typed Python client for the docmill API, blocking and async.

    from docmill.client import Client

    with Client("http://127.0.0.1:8000", api_key="dm_...") as docmill:
        document = docmill.submit("report.pdf")
        done = docmill.wait(document.id)
        print(docmill.text(done.id))

``AsyncClient`` has the same methods as coroutines. Every error answer of the
API raises ``ApiError`` carrying its problem details.
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx

from docmill.api.schemas import DocumentOut, DocumentPage
from docmill.exceptions import DocmillError

DEFAULT_URL = "http://127.0.0.1:8000"
FINAL = frozenset({"completed", "failed", "cancelled"})
# What a proxy in front of a restarting server answers: the server is away,
# not refusing, and asking again later is what a restart calls for.
AWAY_STATUSES = frozenset({502, 503, 504})
RECONNECT_SECONDS = 60.0


class ApiError(DocmillError):
    """The API answered with an error (problem details in ``problem``)."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        self.type = str(problem.get("type", ""))
        super().__init__(f"HTTP {status}: {_described(problem)}")


def _described(problem: dict[str, Any]) -> str:
    """
    The problem's detail, and what each invalid field was refused for: a
    422's detail alone ("the submission is not valid") hid which field.
    """
    detail = str(problem.get("detail") or problem)
    errors = problem.get("errors")
    if not isinstance(errors, list):
        return detail
    reasons = [
        f"{'.'.join(map(str, error.get('loc') or [])) or '(body)'}: {error['msg']}"
        for error in errors
        if isinstance(error, dict) and error.get("msg")
    ]
    return f"{detail} ({'; '.join(reasons)})" if reasons else detail


class WaitTimeout(DocmillError):
    """A document was not final within the time given to ``wait``."""

    def __init__(self, document_id: str, seconds: float) -> None:
        self.document_id = document_id
        super().__init__(f"document {document_id!r} not final after {seconds}s")


class _Outage:
    """
    How long ``wait`` leaves a lost server before asking again, and when it
    stops: ``seconds`` after the server was lost, with pauses doubling from
    half a second to five.

    Polling is a read, so asking again is always safe. No retry library is
    among docmill's dependencies, and this is all one would do here.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.lost_at: float | None = None
        self.pause = 0.0

    def pause_after(self, exc: Exception) -> float | None:
        """Seconds to wait before asking again; None: give up, raise ``exc``."""
        away = isinstance(exc, httpx.TransportError) or (
            isinstance(exc, ApiError) and exc.status in AWAY_STATUSES
        )
        if not away:
            return None
        now = time.monotonic()
        if self.lost_at is None:
            self.lost_at, self.pause = now, 0.25
        left = self.lost_at + self.seconds - now
        if left <= 0:
            return None
        self.pause = min(self.pause * 2, 5.0)
        return min(self.pause, left)

    def over(self) -> None:
        self.lost_at = None


def _check(response: httpx.Response) -> httpx.Response:
    if response.is_success:
        return response
    try:
        problem = response.json()
    except ValueError:
        problem = {"detail": response.text[:500]}
    raise ApiError(response.status_code, problem)


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _form(options: dict[str, Any]) -> dict[str, str]:
    form = {}
    for name, value in options.items():
        if value is None:
            continue
        if name == "metadata":
            value = json.dumps(value)
        elif isinstance(value, bool):
            value = "true" if value else "false"
        form[name] = str(value)
    return form


def _file_part(path: Path, stream: Any, charset: str | None) -> tuple[Any, ...]:
    """The `file` part: with ``charset``, a Content-Type that declares it."""
    if charset is None:
        return (path.name, stream)
    # The server decides the format from the bytes; only the charset counts.
    media_type = mimetypes.guess_type(path.name)[0] or "text/plain"
    return (path.name, stream, f"{media_type}; charset={charset}")


def _segment(document_id: str) -> str:
    # An id is one path segment: "a/b" or "x?y" must not reach another route.
    return quote(document_id, safe="")


def _list_params(filters: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in filters.items() if v is not None}


class Client:
    """
    The blocking client.

    Args:
        base_url: where docmill listens.
        api_key: a key from ``docmill keys create``, when auth is on.
        timeout: seconds for each HTTP request.
        transport: an httpx transport (tests pass one to an in-process app).
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.http = httpx.Client(
            base_url=base_url,
            headers=_headers(api_key),
            timeout=timeout,
            transport=transport,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def submit(
        self,
        path: str | Path,
        *,
        idempotency_key: str | None = None,
        charset: str | None = None,
        **options: Any,
    ) -> DocumentOut:
        """
        Upload a file; ``options`` are the form fields (title, client_ref...),
        ``charset`` the encoding of a text file, declared in its part.
        """
        path = Path(path)
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        with path.open("rb") as stream:
            response = self.http.post(
                "/documents",
                files={"file": _file_part(path, stream, charset)},
                data=_form(options),
                headers=headers,
            )
        return DocumentOut.model_validate(_check(response).json())

    def submit_json(self, **fields: Any) -> DocumentOut:
        """Submit text (``content=``) or a URL (``url=``) as JSON."""
        response = self.http.post("/documents", json=fields)
        return DocumentOut.model_validate(_check(response).json())

    def get(self, document_id: str) -> DocumentOut:
        response = self.http.get(f"/documents/{_segment(document_id)}")
        return DocumentOut.model_validate(_check(response).json())

    def list(self, **filters: Any) -> DocumentPage:
        """One page; filters: status, mime_type, created_after, client_ref, q..."""
        response = self.http.get("/documents", params=_list_params(filters))
        return DocumentPage.model_validate(_check(response).json())

    def text(self, document_id: str) -> str:
        return _check(self.http.get(f"/documents/{_segment(document_id)}/text")).text

    def wait(
        self,
        document_id: str,
        timeout: float = 300.0,
        poll: float = 0.5,
        reconnect_seconds: float = RECONNECT_SECONDS,
    ) -> DocumentOut:
        """
        Poll until the document is final, riding out a server that is away
        (a restart, a deploy).

        Args:
            document_id: the document to wait for.
            timeout: seconds until ``WaitTimeout``. Time without a server
                counts, but only a server that answers can say a document is
                not final.
            poll: seconds between two reads of the document.
            reconnect_seconds: how long a server that cannot be reached, or
                that a proxy answers 502, 503 or 504 for, is asked again
                before its error is raised (0: at once).

        Raises:
            WaitTimeout: the document was not final within ``timeout``.
            ApiError: any other error answer, at once.
            httpx.TransportError: the server stayed out of reach that long.
        """
        deadline = time.monotonic() + timeout
        outage = _Outage(reconnect_seconds)
        while True:
            try:
                document = self.get(document_id)
            except (httpx.TransportError, ApiError) as exc:
                pause = outage.pause_after(exc)
                if pause is None:
                    raise
                time.sleep(pause)
                continue
            outage.over()
            if document.status in FINAL:
                return document
            if time.monotonic() >= deadline:
                raise WaitTimeout(document_id, timeout)
            time.sleep(poll)


class AsyncClient:
    """The async client; the same methods as ``Client``, as coroutines."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        timeout: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.http = httpx.AsyncClient(
            base_url=base_url,
            headers=_headers(api_key),
            timeout=timeout,
            transport=transport,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self.http.aclose()

    async def submit(
        self,
        path: str | Path,
        *,
        idempotency_key: str | None = None,
        charset: str | None = None,
        **options: Any,
    ) -> DocumentOut:
        path = Path(path)
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        # httpx reads the file in chunks as it sends; the upload is not
        # loaded into memory.
        with path.open("rb") as stream:
            response = await self.http.post(
                "/documents",
                files={"file": _file_part(path, stream, charset)},
                data=_form(options),
                headers=headers,
            )
        return DocumentOut.model_validate(_check(response).json())

    async def submit_json(self, **fields: Any) -> DocumentOut:
        response = await self.http.post("/documents", json=fields)
        return DocumentOut.model_validate(_check(response).json())

    async def get(self, document_id: str) -> DocumentOut:
        response = await self.http.get(f"/documents/{_segment(document_id)}")
        return DocumentOut.model_validate(_check(response).json())

    async def list(self, **filters: Any) -> DocumentPage:
        response = await self.http.get("/documents", params=_list_params(filters))
        return DocumentPage.model_validate(_check(response).json())

    async def text(self, document_id: str) -> str:
        return _check(
            await self.http.get(f"/documents/{_segment(document_id)}/text")
        ).text

    async def wait(
        self,
        document_id: str,
        timeout: float = 300.0,
        poll: float = 0.5,
        reconnect_seconds: float = RECONNECT_SECONDS,
    ) -> DocumentOut:
        deadline = time.monotonic() + timeout
        outage = _Outage(reconnect_seconds)
        while True:
            try:
                document = await self.get(document_id)
            except (httpx.TransportError, ApiError) as exc:
                pause = outage.pause_after(exc)
                if pause is None:
                    raise
                await asyncio.sleep(pause)
                continue
            outage.over()
            if document.status in FINAL:
                return document
            if time.monotonic() >= deadline:
                raise WaitTimeout(document_id, timeout)
            await asyncio.sleep(poll)
