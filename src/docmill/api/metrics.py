"""``GET /metrics`` and the middleware that counts requests for it."""

from __future__ import annotations

import time

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from docmill import metrics

router = APIRouter()


class MetricsMiddleware:
    """
    Count each request under its route template (``/documents/{document_id}``),
    never its raw path, so label values stay few whatever ids are requested.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            metrics.HTTP_REQUESTS.labels(method, template, str(status)).inc()
            metrics.HTTP_LATENCY.labels(method, template).observe(
                time.perf_counter() - started
            )


def install(app: FastAPI) -> None:
    app.add_middleware(MetricsMiddleware)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
    tags=["service"],
)
async def get_metrics(request: Request) -> Response:
    """Prometheus text format: requests, latency, queue and extraction figures."""
    stats = await request.app.state.services.store.queue_stats()
    for status, count in stats["counts"].items():
        metrics.DOCUMENTS.labels(status=status).set(count)
    metrics.QUEUE_DEPTH.set(stats["counts"].get("pending", 0))
    metrics.OLDEST_PENDING.set(stats["oldest_pending_seconds"] or 0)
    return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)
