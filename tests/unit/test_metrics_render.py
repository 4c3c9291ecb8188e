"""docmill's Prometheus text: byte for byte what prometheus_client writes."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Enum,
    Gauge,
    Histogram,
    Info,
    Summary,
    generate_latest,
)

from docmill import metrics
from docmill.metrics import render


def test_the_registry_renders_as_generate_latest_does() -> None:
    metrics.observe_extraction("application/pdf", 0.3)
    metrics.observe_extraction(None, 12.0)
    metrics.HTTP_LATENCY.labels(method="GET", route="/documents/{id}").observe(0.002)
    metrics.HTTP_REQUESTS.labels(method="POST", route="/documents", status="202").inc()
    metrics.DOCUMENTS.labels(status="pending").set(3)
    metrics.OLDEST_PENDING.set(1e9)

    assert render() == generate_latest(metrics.REGISTRY)


def test_every_kind_of_metric_and_odd_label_values_render_the_same() -> None:
    registry = CollectorRegistry()
    Counter("c", "a\\counter\nhelp", ["route"], registry=registry).labels(
        route='a"b\\c\nd'
    ).inc(2.5)
    Gauge("g", "gauge", registry=registry).set(float("nan"))
    Gauge("g_inf", "gauge", registry=registry).set(float("-inf"))
    Histogram("h", "histogram", ["le_not"], registry=registry).labels("é").observe(7)
    Summary("s", "summary", registry=registry).observe(1234567.0)
    Info("i", "info", registry=registry).info({"version": "1.0"})
    Enum("e", "enum", states=["a", "b"], registry=registry).state("b")

    assert render(registry) == generate_latest(registry)


def test_a_name_the_format_would_escape_is_left_to_prometheus_client() -> None:
    registry = CollectorRegistry()
    Gauge("g", "gauge", ["label"], registry=registry).labels("x").set(1)
    Gauge("docmill.dotted", "written docmill_dotted", registry=registry).set(0.5)

    assert render(registry) == generate_latest(registry)
