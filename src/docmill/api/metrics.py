"""``GET /metrics``; ``RequestContextMiddleware`` counts the requests."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from docmill import metrics
from docmill.api import auth

router = APIRouter()


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
    tags=["service"],
)
async def get_metrics(request: Request) -> Response:
    """
    Prometheus text format: requests, latency, queue and extraction figures.

    Needs an API key when keys are required, unless DOCMILL_METRICS_PUBLIC is
    set: the figures (documents per status, formats, routes) are about every
    key's documents.
    """
    services = request.app.state.services
    headers: list[tuple[bytes, bytes]] = []
    if services.settings.auth_required and not services.settings.metrics_public:
        headers = await auth.admit(request)
    stats = await services.store.queue_stats()
    for status, count in stats["counts"].items():
        metrics.DOCUMENTS.labels(status=status).set(count)
    metrics.QUEUE_DEPTH.set(stats["counts"].get("pending", 0))
    metrics.OLDEST_PENDING.set(stats["oldest_pending_seconds"] or 0)
    response = Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)
    response.raw_headers.extend(headers)
    return response
