"""
The OpenAPI document is the contract: schemathesis drives every operation,
in process against the ASGI app, on SQLite and PostgreSQL, and every answer
must be a non-5xx that matches the schema (status, content type, body).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.python.asgi import shutdown_lifespans

from docmill import fetch
from docmill.api.app import create_app
from docmill.exceptions import OriginalMissing
from docmill.settings import Settings
from tests.support import wait_final

MAX_EXAMPLES = 20
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def test_api_honours_its_openapi_contract(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def no_dns(host: str, port: int) -> list[str]:
        # Generated URLs name random hosts: no lookup may leave the machine.
        raise OSError(f"name resolution is off in this test ({host!r})")

    monkeypatch.setattr(fetch, "resolve", no_dns)
    app = create_app(settings.model_copy(update={"workers": 1}))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: dict[str, str] = {}
    try:
        for result in schema.get_all_operations():
            operation = result.ok()

            @given(case=operation.as_strategy())
            @hypothesis_settings(
                max_examples=MAX_EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def check(case: schemathesis.Case) -> None:
                case.call_and_validate(checks=CHECKS)

            try:
                check()
            except Exception as exc:  # one report for every operation
                failures[operation.label] = str(exc)[:2000]
    finally:
        shutdown_lifespans()

    assert failures == {}


def _references(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _references(value)
    elif isinstance(node, list):
        for value in node:
            yield from _references(value)


def _resolves(schema: dict[str, Any], reference: str) -> bool:
    node: Any = schema
    for part in reference.removeprefix("#/").split("/"):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def test_every_reference_in_the_contract_resolves(settings: Settings) -> None:
    schema = create_app(settings).openapi()

    references = set(_references(schema))

    assert "#/components/schemas/ParserSpec" in references
    assert sorted(r for r in references if not _resolves(schema, r)) == []


def test_original_is_described_as_any_media_type(settings: Settings) -> None:
    schema = create_app(settings).openapi()

    answer = schema["paths"]["/documents/{document_id}/original"]["get"]["responses"]

    assert list(answer["200"]["content"]) == ["*/*"]


def _query_parameters(operation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in operation["parameters"] if p["in"] == "query"}


def test_the_export_alias_documents_what_the_export_takes(settings: Settings) -> None:
    """`GET /documents?parser=&format=` is the export; its options are too."""
    paths = create_app(settings).openapi()["paths"]
    export = _query_parameters(paths["/parsers/{name}/export"]["get"])
    alias = _query_parameters(paths["/documents"]["get"])

    typed = ("type", "default")
    assert {key: export["escape_formulas"]["schema"][key] for key in typed} == (
        alias["escape_formulas"]["schema"]
    )
    assert alias["escape_formulas"]["description"].endswith(
        export["escape_formulas"]["description"]
    )
    assert alias["format"]["schema"]["enum"] == ["csv", "jsonl"]


@pytest.mark.anyio
async def test_a_missing_original_is_a_documented_410(
    make_client: Callable[..., Awaitable[httpx.AsyncClient]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = await make_client()
    app: Any = client.app  # type: ignore[attr-defined]
    created = await client.post("/documents", json={"content": "x"})
    document = await wait_final(client, created.json()["id"])

    @contextlib.asynccontextmanager
    async def gone(key: str) -> AsyncIterator[Path]:
        raise OriginalMissing(key)
        yield Path()  # pragma: no cover - makes this a generator

    monkeypatch.setattr(app.state.services.storage, "local_copy", gone)
    answer = await client.get(f"/documents/{document['id']}/original")
    documented = app.openapi()["paths"]["/documents/{document_id}/original"]["get"]

    assert (answer.status_code, answer.json()["type"]) == (
        410,
        "urn:docmill:problem:original-missing",
    )
    assert "410" in documented["responses"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("name", "status"),
    [
        pytest.param("", 422, id="empty"),
        pytest.param("1st", 422, id="leading-digit"),
        pytest.param("a-b", 422, id="dash"),
        pytest.param("total_2", 201, id="word"),
    ],
)
async def test_field_names_the_contract_allows_are_the_ones_accepted(
    make_client: Callable[..., Awaitable[httpx.AsyncClient]], name: str, status: int
) -> None:
    client = await make_client()
    app: Any = client.app  # type: ignore[attr-defined]
    spec = app.openapi()["components"]["schemas"]["ParserSpec"]
    pattern = spec["properties"]["fields"]["propertyNames"]["pattern"]
    rules = {"name": "p", "fields": {name: {"rule": "constant", "value": 1}}}

    answer = await client.post("/parsers", json=rules)

    assert answer.status_code == status
    assert bool(re.fullmatch(pattern, name)) == (status == 201)


@pytest.mark.anyio
async def test_a_field_name_ending_in_a_newline_is_refused(
    make_client: Callable[..., Awaitable[httpx.AsyncClient]],
) -> None:
    client = await make_client()
    rules = {"name": "p", "fields": {"total\n": {"rule": "constant", "value": 1}}}

    answer = await client.post("/parsers", json=rules)

    assert answer.status_code == 422


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        pytest.param("OPTIONS", "/documents", "GET, HEAD, POST", id="documents"),
        pytest.param("OPTIONS", "/documents/x", "GET, HEAD, DELETE", id="document"),
        pytest.param("PATCH", "/parsers/p", "GET, HEAD, PUT, DELETE", id="parser"),
        pytest.param("OPTIONS", "/healthz", "GET, HEAD", id="probe"),
    ],
)
async def test_a_405_allows_every_method_of_the_path(
    client: httpx.AsyncClient, method: str, path: str, allow: str
) -> None:
    answer = await client.request(method, path)

    assert (answer.status_code, answer.headers["allow"]) == (405, allow)
    assert answer.json()["type"] == "urn:docmill:problem:method-not-allowed"


@pytest.mark.anyio
async def test_readyz_not_ready_answers_as_the_contract_says(
    make_client: Callable[..., Awaitable[httpx.AsyncClient]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """/readyz's 503 carries the Readiness body (probes read which check
    failed); the contract had called it a problem."""
    client = await make_client()
    app: Any = client.app  # type: ignore[attr-defined]

    async def unwritable() -> bool:
        return False

    monkeypatch.setattr(app.state.services.data_dir_probe, "check", unwritable)
    answer = await client.get("/readyz")
    documented = app.openapi()["paths"]["/readyz"]["get"]["responses"]["503"]

    assert answer.status_code == 503
    assert list(documented["content"]) == [answer.headers["content-type"]]
    assert documented["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Readiness"
    }
    assert answer.json()["status"] == "not_ready"
