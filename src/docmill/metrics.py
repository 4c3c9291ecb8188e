"""
Prometheus metrics, in one registry of docmill's own.

Request and extraction figures are counted by the process that sees them
(the API process, the worker process); queue figures are read from the
database at each scrape, so every API process reports the same queue.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter(
    "docmill_http_requests",
    "HTTP requests answered, by route template and status code.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "docmill_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template.",
    ["method", "route"],
    registry=REGISTRY,
)
DOCUMENTS = Gauge(
    "docmill_documents",
    "Documents in the database, by status.",
    ["status"],
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "docmill_queue_depth",
    "Documents waiting to be processed (status pending).",
    registry=REGISTRY,
)
OLDEST_PENDING = Gauge(
    "docmill_oldest_pending_age_seconds",
    "How long the oldest due pending document has waited (0 when none).",
    registry=REGISTRY,
)
EXTRACTION_SECONDS = Histogram(
    "docmill_extraction_duration_seconds",
    "Wall-clock time of a completed extraction, by detected format.",
    ["format"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
    registry=REGISTRY,
)


def observe_extraction(mime_type: str | None, seconds: float) -> None:
    EXTRACTION_SECONDS.labels(format=mime_type or "unknown").observe(seconds)
