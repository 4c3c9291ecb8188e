"""API keys, owner scoping and rate limits."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Request, Response
from fastapi.routing import APIRouter

from docmill.api.auth import GuardedRoute

pytestmark = pytest.mark.anyio

MakeClient = Callable[..., Awaitable[httpx.AsyncClient]]


async def new_token(client: httpx.AsyncClient, name: str = "team") -> str:
    services: Any = client.app.state.services  # type: ignore[attr-defined]
    return str((await services.keys.create(name)).token)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_missing_key_is_a_401_problem(make_client: MakeClient) -> None:
    client = await make_client(auth="on")

    response = await client.get("/documents")

    assert (response.status_code, response.json()["type"]) == (
        401,
        "urn:docmill:problem:unauthorized",
    )
    assert response.headers["www-authenticate"] == "Bearer"


async def test_unknown_key_is_refused(make_client: MakeClient) -> None:
    client = await make_client(auth="on")
    token = await new_token(client)

    response = await client.get("/documents", headers=bearer(token + "x"))

    assert response.json()["type"] == "urn:docmill:problem:invalid-api-key"


@pytest.mark.parametrize(
    ("header", "status"),
    [
        pytest.param("bearer {token}", 200, id="scheme-case-ignored"),
        pytest.param("Bearer   {token}  ", 200, id="spaces-around-token"),
        pytest.param("Basic {token}", 401, id="other-scheme"),
        pytest.param("Bearer", 401, id="no-token"),
        pytest.param("{token}", 401, id="no-scheme"),
    ],
)
async def test_only_a_bearer_token_is_read(
    make_client: MakeClient, header: str, status: int
) -> None:
    client = await make_client(auth="on")
    token = await new_token(client)

    response = await client.get(
        "/documents", headers={"Authorization": header.format(token=token)}
    )

    assert response.status_code == status


async def test_contract_names_the_bearer_scheme_on_guarded_routes(
    make_client: MakeClient,
) -> None:
    client = await make_client()

    schema = (await client.get("/openapi.json")).json()

    assert schema["components"]["securitySchemes"] == {
        "HTTPBearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key: dm_<id>_<secret>",
        }
    }
    assert schema["paths"]["/documents"]["post"]["security"] == [{"HTTPBearer": []}]
    assert schema["paths"]["/metrics"]["get"]["security"] == [{"HTTPBearer": []}]


@pytest.mark.parametrize(
    ("changes", "open_paths"),
    [
        pytest.param({}, ["/healthz", "/readyz"], id="probes"),
        pytest.param(
            {"metrics_public": True},
            ["/healthz", "/metrics", "/readyz"],
            id="public-metrics",
        ),
    ],
)
async def test_contract_names_a_key_exactly_where_one_is_asked_for(
    make_client: MakeClient, changes: dict[str, Any], open_paths: list[str]
) -> None:
    client = await make_client(auth="on", **changes)
    schema = (await client.get("/openapi.json")).json()

    answered, contradicted = set(), []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            answer = await client.request(method, re.sub(r"\{[^}]+\}", "x", path))
            asked = answer.status_code == 401
            said = ("security" in operation, "401" in operation["responses"])
            if said != (asked, asked):
                contradicted.append((method, path))
            if not asked:
                answered.add(path)

    assert (sorted(answered), contradicted) == (open_paths, [])


@pytest.mark.parametrize(
    ("changes", "with_key", "status"),
    [
        pytest.param({"auth": "on"}, False, 401, id="auth-on-no-key"),
        pytest.param({"auth": "on"}, True, 200, id="auth-on-with-key"),
        pytest.param(
            {"auth": "on", "metrics_public": True}, False, 200, id="public-opt-out"
        ),
        pytest.param({"auth": "off"}, False, 200, id="auth-off"),
    ],
)
async def test_metrics_need_a_key_when_keys_are_required(
    make_client: MakeClient, changes: dict[str, Any], with_key: bool, status: int
) -> None:
    """Metrics count every key's documents, so they are not open to anyone."""
    client = await make_client(**changes)
    headers = bearer(await new_token(client, "prometheus")) if with_key else {}

    response = await client.get("/metrics", headers=headers)

    assert response.status_code == status


async def test_a_key_sees_only_its_own_documents(make_client: MakeClient) -> None:
    client = await make_client(auth="on")
    alice, bob = await new_token(client, "alice"), await new_token(client, "bob")
    created = await client.post(
        "/documents", json={"content": "alice's"}, headers=bearer(alice)
    )
    document_id = created.json()["id"]

    own = await client.get(f"/documents/{document_id}", headers=bearer(alice))
    other = await client.get(f"/documents/{document_id}", headers=bearer(bob))
    listing = (await client.get("/documents", headers=bearer(bob))).json()
    delete = await client.delete(f"/documents/{document_id}", headers=bearer(bob))

    assert (own.status_code, other.status_code, delete.status_code) == (
        200,
        404,
        404,
    )
    assert listing["items"] == []


async def test_an_endpoint_finds_the_caller_on_request_state(
    make_client: MakeClient,
) -> None:
    """``admit`` records the caller where an endpoint reads it."""
    from docmill.api import auth

    client = await make_client(auth="on")
    services: Any = client.app.state.services  # type: ignore[attr-defined]
    key = await services.keys.create("alice")

    async def whoami(request: Request) -> Response:
        principal = request.state.principal
        return Response(f"{principal.key_id} {auth.owner(request)}")

    router = APIRouter(route_class=GuardedRoute)
    router.add_api_route("/whoami", whoami)
    client.app.include_router(router)  # type: ignore[attr-defined]
    response = await client.get("/whoami", headers=bearer(key.token))

    assert response.text == f"{key.id} {key.id}"


async def test_revoked_key_stops_working(make_client: MakeClient) -> None:
    client = await make_client(auth="on")
    token = await new_token(client)
    services: Any = client.app.state.services  # type: ignore[attr-defined]
    await services.keys.revoke(token.split("_")[1])

    response = await client.get("/documents", headers=bearer(token))

    assert response.status_code == 401


async def test_keys_are_stored_hashed(make_client: MakeClient) -> None:
    client = await make_client(auth="on")
    token = await new_token(client)
    services: Any = client.app.state.services  # type: ignore[attr-defined]
    from sqlalchemy import text

    async with services.engine.connect() as connection:
        stored = (
            await connection.execute(text("SELECT secret_sha256 FROM api_keys"))
        ).scalar_one()

    assert token.split("_", 2)[2] not in stored


async def test_health_needs_no_key(make_client: MakeClient) -> None:
    client = await make_client(auth="on")

    assert (await client.get("/healthz")).status_code == 200


async def test_auto_auth_is_on_off_loopback(make_client: MakeClient) -> None:
    client = await make_client(host="0.0.0.0")

    assert (await client.get("/documents")).status_code == 401


async def test_open_api_on_loopback_is_announced_loudly(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="docmill.api.auth"):
        await make_client()

    assert any("API keys are OFF" in r.getMessage() for r in caplog.records)


async def test_open_api_warning_names_a_reverse_proxy(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    """A proxy on the same host reaches a loopback API: keys are off for all."""
    with caplog.at_level(logging.WARNING, logger="docmill.api.auth"):
        await make_client()

    [warning] = [r for r in caplog.records if r.name == "docmill.api.auth"]
    assert "including through a reverse proxy on this host" in warning.getMessage()


async def test_rate_limit_answers_429_with_headers(make_client: MakeClient) -> None:
    client = await make_client(rate_limit="2/minute")

    answers = [await client.get("/documents") for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[0].headers["ratelimit-remaining"] == "1"
    assert answers[2].json()["type"] == "urn:docmill:problem:rate-limited"
    assert int(answers[2].headers["retry-after"]) >= 1


async def test_status_read_carries_rate_limit_headers(make_client: MakeClient) -> None:
    client = await make_client(rate_limit="5/minute")
    created = (await client.post("/documents", json={"content": "x"})).json()

    answer = await client.get(f"/documents/{created['id']}")

    assert answer.status_code == 200
    assert answer.headers["ratelimit-limit"] == "5"
    assert answer.headers["ratelimit-remaining"] == "3"


async def test_submit_answer_carries_location_and_rate_limit_headers(
    make_client: MakeClient,
) -> None:
    client = await make_client(rate_limit="5/minute")

    answer = await client.post(
        "/documents", json={"content": "x"}, headers={"X-Request-ID": "sub-1"}
    )

    assert answer.status_code == 202
    assert answer.headers["location"] == f"/documents/{answer.json()['id']}"
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["x-request-id"] == "sub-1"
    assert answer.headers["ratelimit-limit"] == "5"
    assert answer.headers["ratelimit-remaining"] == "4"
    assert int(answer.headers["ratelimit-reset"]) in range(0, 61)


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        pytest.param("GET", "/documents/nope", None, 404, id="not-found"),
        pytest.param("GET", "/documents?limit=many", None, 422, id="validation"),
        pytest.param("POST", "/documents", {}, 422, id="no-content"),
        pytest.param("HEAD", "/documents/nope", None, 404, id="head"),
    ],
)
async def test_an_error_the_route_raises_carries_rate_limit_headers(
    make_client: MakeClient,
    method: str,
    path: str,
    body: dict[str, str] | None,
    status: int,
) -> None:
    """Only the endpoint's own answers and the 429 carried them."""
    client = await make_client(rate_limit="5/minute")

    answer = await client.request(method, path, json=body)

    limits = {k: v for k, v in answer.headers.items() if k.startswith("ratelimit-")}
    assert answer.status_code == status
    assert (limits.pop("ratelimit-reset", None) is not None, limits) == (
        True,
        {"ratelimit-limit": "5", "ratelimit-remaining": "4"},
    )


async def test_an_unexpected_error_carries_rate_limit_headers(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await make_client(rate_limit="5/minute")

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    store = client.app.state.services.store  # type: ignore[attr-defined]
    monkeypatch.setattr(store, "list", broken)
    answer = await client.get("/documents")

    assert (answer.status_code, answer.headers.get("ratelimit-limit")) == (500, "5")


async def test_rate_limit_is_per_key(make_client: MakeClient) -> None:
    client = await make_client(auth="on", rate_limit="1/minute")
    first, second = await new_token(client, "a"), await new_token(client, "b")

    answers = [
        await client.get("/documents", headers=bearer(token))
        for token in (first, second, first)
    ]

    assert [a.status_code for a in answers] == [200, 200, 429]


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-key"),
        pytest.param({"Authorization": "Bearer dm_nokey_guess"}, id="wrong-key"),
    ],
)
async def test_failed_keys_spend_the_client_address_budget(
    make_client: MakeClient, headers: dict[str, str]
) -> None:
    client = await make_client(auth="on", rate_limit="2/minute")
    token = await new_token(client)

    answers = [await client.get("/documents", headers=headers) for _ in range(3)]
    keyed = await client.get("/documents", headers=bearer(token))

    assert [a.status_code for a in answers] == [401, 401, 429]
    assert int(answers[2].headers["retry-after"]) in range(1, 61)
    assert answers[1].headers["ratelimit-remaining"] == "0"
    # A key's own budget is not the address's.
    assert keyed.status_code == 200


async def test_redis_counters_are_shared_by_api_processes(
    make_client: MakeClient,
) -> None:
    redis = pytest.importorskip("redis.asyncio")
    try:
        connection = redis.Redis.from_url("redis://127.0.0.1:6379")
        await connection.ping()
        await connection.aclose()
    except Exception as exc:
        pytest.skip(f"no Redis at 127.0.0.1:6379: {exc!r}")
    shared = {
        "auth": "on",
        "rate_limit": "2/minute",
        "redis_url": "redis://127.0.0.1:6379",
    }
    one = await make_client(**shared)
    two = await make_client(**shared)
    token = await new_token(one)

    answers = [
        await client.get("/documents", headers=bearer(token))
        for client in (one, two, one)
    ]

    assert [a.status_code for a in answers] == [200, 200, 429]


async def test_a_parser_never_reaches_another_keys_document(
    make_client: MakeClient,
) -> None:
    client = await make_client(auth="on")
    alice, bob = await new_token(client, "alice"), await new_token(client, "bob")
    created = await client.post(
        "/documents",
        json={"content": "alice secret 123-45-6789"},
        headers=bearer(alice),
    )
    document_id = created.json()["id"]
    for _ in range(600):
        status = (
            await client.get(f"/documents/{document_id}", headers=bearer(alice))
        ).json()["status"]
        if status == "completed":
            break
        await asyncio.sleep(0.05)
    assert status == "completed"
    # A shared parser (the operator's), which both keys may use.
    await _share_parser(
        client,
        {
            "name": "all",
            "fields": {"all": {"rule": "regex", "pattern": "(?P<value>[\\s\\S]+)"}},
        },
    )
    assert (
        await client.post(
            f"/documents/{document_id}/parse?parser=all", headers=bearer(alice)
        )
    ).status_code == 200

    run = await client.post(
        f"/documents/{document_id}/parse?parser=all", headers=bearer(bob)
    )
    dry = await client.post(
        "/parsers/all/test", json={"document_id": document_id}, headers=bearer(bob)
    )
    fields = await client.get(f"/documents/{document_id}/fields", headers=bearer(bob))
    export = await client.get("/parsers/all/export", headers=bearer(bob))
    listed = await client.get(
        "/documents", params={"parser": "all", "format": "jsonl"}, headers=bearer(bob)
    )
    own_export = await client.get("/parsers/all/export", headers=bearer(alice))

    assert (run.status_code, dry.status_code, fields.status_code) == (404, 404, 404)
    for answer in (run, dry, fields, export, listed):
        assert "123-45-6789" not in answer.text
    # The 404s name the id the caller sent; the exports must not list it.
    assert document_id not in export.text + listed.text
    assert (export.status_code, export.text) == (200, "")
    assert document_id in own_export.text and "123-45-6789" in own_export.text


async def _share_parser(client: httpx.AsyncClient, rules: dict[str, Any]) -> None:
    """Save a parser as ``docmill parsers apply`` does: shared, no owner."""
    from docmill.parsing.rules import ParserSpec
    from docmill.parsing.store import ParserStore

    services: Any = client.app.state.services  # type: ignore[attr-defined]
    await ParserStore(services.engine).save(ParserSpec.model_validate(rules))


def _rules(name: str, word: str) -> dict[str, Any]:
    return {
        "name": name,
        "fields": {"word": {"rule": "regex", "pattern": f"(?P<value>{word})"}},
    }


async def _completed(client: httpx.AsyncClient, document_id: str, token: str) -> None:
    for _ in range(600):
        answer = await client.get(f"/documents/{document_id}", headers=bearer(token))
        if answer.json()["status"] == "completed":
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"document {document_id} did not complete")


async def test_a_keys_parser_is_its_own(make_client: MakeClient) -> None:
    client = await make_client(auth="on")
    alice, bob = await new_token(client, "alice"), await new_token(client, "bob")
    created = await client.post(
        "/parsers", json=_rules("inv", "alpha"), headers=bearer(alice)
    )
    assert created.status_code == 201

    seen = await client.get("/parsers/inv", headers=bearer(bob))
    listed = await client.get("/parsers", headers=bearer(bob))
    export = await client.get("/parsers/inv/export", headers=bearer(bob))
    dropped = await client.delete("/parsers/inv", headers=bearer(bob))
    submitted = await client.post(
        "/documents?parser=inv", json={"content": "alpha"}, headers=bearer(bob)
    )
    assert [a.status_code for a in (seen, export, dropped, submitted)] == [
        404,
        404,
        404,
        422,
    ]
    assert listed.json()["items"] == []

    # Bob's own parser of the same name is a different parser; Alice's stays.
    put = await client.put(
        "/parsers/inv", json=_rules("inv", "beta"), headers=bearer(bob)
    )
    assert (put.status_code, put.json()["version"]) == (200, 1)
    alices = (await client.get("/parsers/inv", headers=bearer(alice))).json()
    assert (alices["version"], alices["rules"]["fields"]["word"]["pattern"]) == (
        1,
        "(?P<value>alpha)",
    )

    # Each document is parsed by its own key's rules, in the worker too.
    fields = {}
    for token in (alice, bob):
        answer = await client.post(
            "/documents?parser=inv",
            json={"content": "alpha beta"},
            headers=bearer(token),
        )
        assert answer.status_code == 202, answer.text
        document_id = answer.json()["id"]
        await _completed(client, document_id, token)
        read = await client.get(
            f"/documents/{document_id}/fields", headers=bearer(token)
        )
        fields[token] = read.json()["fields"]["word"]
    assert (fields[alice], fields[bob]) == ("alpha", "beta")

    assert (await client.delete("/parsers/inv", headers=bearer(bob))).status_code == 204
    assert (await client.get("/parsers/inv", headers=bearer(alice))).status_code == 200


async def test_a_shared_parser_is_used_by_every_key_and_changed_by_none(
    make_client: MakeClient,
) -> None:
    client = await make_client(auth="on")
    alice, bob = await new_token(client, "alice"), await new_token(client, "bob")
    await _share_parser(client, _rules("common", "alpha"))

    for token in (alice, bob):
        listed = (await client.get("/parsers", headers=bearer(token))).json()
        assert [(p["name"], p["shared"]) for p in listed["items"]] == [("common", True)]
    refused = await client.delete("/parsers/common", headers=bearer(bob))
    assert (refused.status_code, refused.json()["type"]) == (
        403,
        "urn:docmill:problem:parser-shared",
    )
    exists = await client.post(
        "/parsers", json=_rules("common", "beta"), headers=bearer(bob)
    )
    assert exists.status_code == 409

    # Bob's own version hides the shared one from Bob only.
    await client.put(
        "/parsers/common", json=_rules("common", "beta"), headers=bearer(bob)
    )
    bobs = (await client.get("/parsers", headers=bearer(bob))).json()["items"]
    alices = (await client.get("/parsers", headers=bearer(alice))).json()["items"]
    assert [(p["shared"], p["rules"]["fields"]["word"]["pattern"]) for p in bobs] == [
        (False, "(?P<value>beta)")
    ]
    assert [p["shared"] for p in alices] == [True]


async def test_the_upload_page_asks_for_a_key_and_sends_it(
    make_client: MakeClient,
) -> None:
    client = await make_client(auth="on")

    page = await client.get("/")

    assert page.status_code == 200
    script = page.text.split("<script>")[1]
    # One fetch, inside call(), which adds the key and shows the key form
    # on a 401; any other fetch would go out without the key.
    assert script.count("fetch(") == 1
    assert 'id="key"' in page.text and "Authorization: `Bearer ${key}`" in script


def _guarded_app(**include: Any) -> FastAPI:
    router = APIRouter(route_class=GuardedRoute)

    # /healthz is an open path: admit lets it through without services.
    @router.get("/healthz")
    async def plain(request: Request) -> Response:
        return Response(request.headers.get("x-seen", "endpoint"))

    app = FastAPI()
    app.include_router(router, **include)
    return app


async def test_a_request_only_endpoint_keeps_its_router_dependencies() -> None:
    """
    The direct call of an endpoint that takes only the request must not skip
    a dependency that the router's inclusion adds.
    """
    calls: list[str] = []

    async def record(request: Request) -> None:
        calls.append(request.url.path)

    app = _guarded_app(dependencies=[Depends(record)])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/healthz")

    assert (response.text, calls) == ("endpoint", ["/healthz"])


def test_status_and_submit_are_called_without_fastapi_handler() -> None:
    from docmill.api import routes
    from docmill.api.auth import _request_only_endpoint

    direct = {
        (method, route.path)
        for route in routes.router.routes
        if _request_only_endpoint(route) is not None  # type: ignore[arg-type]
        for method in route.methods  # type: ignore[attr-defined]
    }

    assert direct == {("POST", "/documents"), ("GET", "/documents/{document_id}")}
