"""
Live progress as Server-Sent Events.

The stream watches the document's row rather than an in-process signal, so
it reports changes made by any worker process, on any machine. Each change
of status, attempt, progress or error is one ``status`` event; the stream
ends after the event that shows a final status, or when the server stops.

The streams of one process share their polling (``StatusPoller``): every
``POLL_SECONDS`` one read covers every document watched, however many
streams watch each. Polled one read per stream, 100 streams on one pending
document cost PostgreSQL about 750 transactions a second.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from docmill.api import auth
from docmill.api.auth import GuardedRoute
from docmill.db.models import JobStatus
from docmill.exceptions import DocumentNotFound
from docmill.queue.store import JobStore

router = APIRouter(route_class=GuardedRoute)

POLL_SECONDS = 0.25
# A comment line now and then keeps proxies from closing an idle stream.
KEEPALIVE_SECONDS = 15.0


def _snapshot(row: Any) -> dict[str, Any]:
    error = None
    if row.error_code:
        error = {"code": row.error_code, "message": row.error_message or ""}
    return {
        "id": row.id,
        "status": row.status,
        "attempts": row.attempts,
        "progress": row.progress,
        "error": error,
        "client_ref": row.client_ref,
    }


class StatusPoller:
    """
    Reads the rows that this process's streams wait for, all at once.

    A stream asks for its document's next row (``next_row``); the poller
    wakes every ``POLL_SECONDS`` while anyone is waiting and answers all of
    them from one read of the documents asked for (a document's row is
    None once it is gone). A stream so sees each change within a poll
    interval, as when each polled on its own.
    """

    def __init__(self, store: JobStore) -> None:
        self.store = store
        self._waiting: dict[str, list[asyncio.Future[Any]]] = {}
        self._task: asyncio.Task[None] | None = None

    async def next_row(self, document_id: str) -> Any | None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._waiting.setdefault(document_id, []).append(future)
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._poll())
        return await future

    async def _poll(self) -> None:
        while self._waiting:
            await asyncio.sleep(POLL_SECONDS)
            waiting, self._waiting = self._waiting, {}
            try:
                rows = await self.store.get_statuses(list(waiting))
            except Exception as exc:
                for futures in waiting.values():
                    for future in futures:
                        if not future.done():
                            future.set_exception(exc)
                continue
            for document_id, futures in waiting.items():
                for future in futures:
                    # A stream whose client left is cancelled while waiting.
                    if not future.done():
                        future.set_result(rows.get(document_id))


_POLLERS: weakref.WeakKeyDictionary[JobStore, StatusPoller] = (
    weakref.WeakKeyDictionary()
)


def _poller(store: JobStore) -> StatusPoller:
    poller = _POLLERS.get(store)
    if poller is None:
        poller = _POLLERS[store] = StatusPoller(store)
    return poller


async def _watch(request: Request, document_id: str, first: Any) -> AsyncIterator[str]:
    poller = _poller(request.app.state.services.store)
    stopping: asyncio.Event | None = getattr(request.app.state, "stopping", None)
    loop = asyncio.get_running_loop()
    row, sent, quiet_since = first, None, loop.time()
    while True:
        snapshot = _snapshot(row)
        if snapshot != sent:
            yield f"event: status\ndata: {json.dumps(snapshot)}\n\n"
            sent, quiet_since = snapshot, loop.time()
        if JobStatus(row.status).is_final or await request.is_disconnected():
            return
        if stopping is not None and stopping.is_set():
            # The server is stopping: a clean end, within a poll interval,
            # after which a client reconnects (to another server, perhaps).
            return
        if loop.time() - quiet_since >= KEEPALIVE_SECONDS:
            yield ": keep-alive\n\n"
            quiet_since = loop.time()
        row = await poller.next_row(document_id)
        if row is None:
            yield f"event: deleted\ndata: {json.dumps({'id': document_id})}\n\n"
            return


@router.get(
    "/documents/{document_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
    tags=["documents"],
)
async def document_events(document_id: str, request: Request) -> StreamingResponse:
    """Status changes as Server-Sent Events, until the document is final."""
    row = await request.app.state.services.store.get(document_id)
    owner = auth.owner(request)
    if owner is not None and row.owner != owner:
        raise DocumentNotFound(document_id)
    return StreamingResponse(
        _watch(request, document_id, row),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
