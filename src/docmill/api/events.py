"""
Live progress as Server-Sent Events.

The stream watches the document's row rather than an in-process signal, so
it reports changes made by any worker process, on any machine. Each change
of status, attempt, progress or error is one ``status`` event; the stream
ends after the event that shows a final status.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from docmill.api import auth
from docmill.api.auth import GuardedRoute
from docmill.db.models import JobStatus
from docmill.exceptions import DocumentNotFound

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


async def _watch(request: Request, document_id: str, first: Any) -> AsyncIterator[str]:
    store = request.app.state.services.store
    row, sent, quiet = first, None, 0.0
    while True:
        snapshot = _snapshot(row)
        if snapshot != sent:
            yield f"event: status\ndata: {json.dumps(snapshot)}\n\n"
            sent, quiet = snapshot, 0.0
        if JobStatus(row.status).is_final or await request.is_disconnected():
            return
        if quiet >= KEEPALIVE_SECONDS:
            yield ": keep-alive\n\n"
            quiet = 0.0
        await asyncio.sleep(POLL_SECONDS)
        quiet += POLL_SECONDS
        try:
            row = await store.get(document_id)
        except DocumentNotFound:
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
