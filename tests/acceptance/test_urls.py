"""Submission by URL: fetched by the worker, through the address guard."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import pytest

from docmill import fetch
from tests.servers import Handler, local_server
from tests.support import wait_final

pytestmark = pytest.mark.anyio

MakeClient = Callable[..., Awaitable[httpx.AsyncClient]]
LOCAL = ["127.0.0.1/32"]


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    names: dict[str, list[str]] = {}

    async def resolve(host: str, port: int) -> list[str]:
        if host not in names:
            raise OSError(f"unknown host {host}")
        return names[host]

    monkeypatch.setattr(fetch, "resolve", resolve)
    return names


def _serve_text(handler: Handler) -> None:
    handler.answer(
        200,
        b"fetched words from afar",
        {"Content-Disposition": 'attachment; filename="far.txt"'},
    )


async def test_url_is_fetched_then_extracted(make_client: MakeClient) -> None:
    client = await make_client(fetch_allow_networks=LOCAL)
    with local_server({"/doc": _serve_text}) as server:
        created = await client.post("/documents", json={"url": server.url("/doc")})
        body = await wait_final(client, created.json()["id"])
    text = await client.get(f"/documents/{body['id']}/text")

    assert (created.json()["source"], body["status"]) == ("url", "completed")
    assert (text.text, body["filename"]) == ("fetched words from afar", "far.txt")


async def test_redirects_are_followed_and_checked(make_client: MakeClient) -> None:
    client = await make_client(fetch_allow_networks=LOCAL)
    routes = {
        "/doc": _serve_text,
        "/old": lambda h: h.answer(302, headers={"Location": "/doc"}),
    }
    with local_server(routes) as server:
        created = await client.post("/documents", json={"url": server.url("/old")})
        body = await wait_final(client, created.json()["id"])

    assert body["status"] == "completed"


@pytest.mark.parametrize(
    "target",
    [
        pytest.param("http://169.254.169.254/latest/meta-data/", id="metadata"),
        pytest.param("http://10.0.0.5/", id="private"),
        pytest.param("http://127.0.0.2/", id="loopback-outside-allow-list"),
        pytest.param("http://internal.test/", id="name-to-loopback"),
    ],
)
async def test_redirect_to_a_forbidden_address_fails_the_document(
    make_client: MakeClient, resolver: dict[str, list[str]], target: str
) -> None:
    resolver["internal.test"] = ["::1"]
    client = await make_client(fetch_allow_networks=LOCAL)
    routes = {"/hop": lambda h: h.answer(302, headers={"Location": target})}
    with local_server(routes) as server:
        created = await client.post("/documents", json={"url": server.url("/hop")})
        body = await wait_final(client, created.json()["id"])

    assert (body["status"], body["error"]["code"]) == ("failed", "forbidden_address")


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http://127.0.0.1:9/", id="loopback"),
        pytest.param("http://[::1]/", id="loopback-v6"),
        pytest.param("http://10.0.0.5/", id="private"),
        pytest.param("http://169.254.169.254/latest/meta-data/", id="metadata"),
        pytest.param("http://intranet.example/x", id="name-to-loopback"),
    ],
)
async def test_url_to_a_forbidden_address_is_refused_at_submit(
    client: httpx.AsyncClient, resolver: dict[str, list[str]], url: str
) -> None:
    resolver["intranet.example"] = ["127.0.0.1"]

    created = await client.post("/documents", json={"url": url})

    assert (created.status_code, created.json()["type"]) == (
        422,
        "urn:docmill:problem:forbidden-address",
    )
    assert created.json()["errors"][0]["loc"] == ["url"]


async def test_batch_item_with_a_forbidden_url_fails_alone(
    client: httpx.AsyncClient,
) -> None:
    items = [{"url": "http://127.0.0.1:9/"}, {"content": "fine"}]

    response = await client.post("/documents/batch", json={"items": items})

    assert [item["status"] for item in response.json()["items"]] == [422, 202]


async def test_name_that_resolves_to_loopback_after_submit_is_forbidden(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    The worker checks again: a name that did not resolve at submission (so
    was accepted) may resolve to a refused address by then.
    """
    calls = []

    async def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        if len(calls) == 1:
            raise OSError(f"unknown host {host}")
        return ["127.0.0.1"]

    monkeypatch.setattr(fetch, "resolve", resolve)
    created = await client.post("/documents", json={"url": "http://flip.example/"})

    body = await wait_final(client, created.json()["id"])

    assert (created.status_code, body["error"]["code"]) == (202, "forbidden_address")


async def test_http_error_fails_as_fetch_failed(make_client: MakeClient) -> None:
    client = await make_client(fetch_allow_networks=LOCAL)
    with local_server({}) as server:
        created = await client.post("/documents", json={"url": server.url("/gone")})
        body = await wait_final(client, created.json()["id"])

    assert (body["error"]["code"], body["attempts"]) == ("fetch_failed", 1)
    assert "404" in body["error"]["message"]


async def test_too_many_redirects_fail_as_fetch_failed(
    make_client: MakeClient,
) -> None:
    client = await make_client(fetch_allow_networks=LOCAL, fetch_max_redirects=2)
    routes = {"/loop": lambda h: h.answer(302, headers={"Location": "/loop"})}
    with local_server(routes) as server:
        created = await client.post("/documents", json={"url": server.url("/loop")})
        body = await wait_final(client, created.json()["id"])

    assert body["error"]["code"] == "fetch_failed"


async def test_error_after_a_redirect_names_the_submitted_url(
    make_client: MakeClient,
) -> None:
    client = await make_client(fetch_allow_networks=LOCAL)
    routes = {"/old": lambda h: h.answer(302, headers={"Location": "/gone"})}
    with local_server(routes) as server:
        created = await client.post("/documents", json={"url": server.url("/old")})
        body = await wait_final(client, created.json()["id"])

    assert body["error"]["message"] == (
        f"{server.url('/old')!r} (redirected to {server.url('/gone')!r}) "
        "answered HTTP 404"
    )


async def test_forbidden_redirect_names_the_submitted_url(
    make_client: MakeClient,
) -> None:
    client = await make_client(fetch_allow_networks=LOCAL)
    target = "http://10.0.0.5/x"
    routes = {"/hop": lambda h: h.answer(302, headers={"Location": target})}
    with local_server(routes) as server:
        created = await client.post("/documents", json={"url": server.url("/hop")})
        body = await wait_final(client, created.json()["id"])

    assert body["error"]["message"].endswith(
        f"; {server.url('/hop')!r} redirected to {target!r}"
    )


@pytest.mark.parametrize(
    ("most", "message"),
    [
        pytest.param(
            0,
            "{a!r} redirects (to {b!r}), and this server follows no redirects",
            id="0",
        ),
        pytest.param(1, "more than 1 redirect from {a!r} (the last to {c!r})", id="1"),
        pytest.param(2, "more than 2 redirects from {a!r} (the last to {d!r})", id="2"),
    ],
)
async def test_too_many_redirects_name_the_submitted_url(
    make_client: MakeClient, most: int, message: str
) -> None:
    client = await make_client(fetch_allow_networks=LOCAL, fetch_max_redirects=most)
    routes = {
        f"/{here}": lambda h, there=there: h.answer(302, headers={"Location": there})
        for here, there in zip("abcd", ["/b", "/c", "/d", "/e"], strict=True)
    }
    with local_server(routes) as server:
        created = await client.post("/documents", json={"url": server.url("/a")})
        body = await wait_final(client, created.json()["id"])

    assert body["error"]["message"] == message.format(
        **{name: server.url(f"/{name}") for name in "abcd"}
    )


async def test_original_of_an_unfetched_url_is_409(make_client: MakeClient) -> None:
    client = await make_client(workers=0)
    created = await client.post("/documents", json={"url": "https://example.com/a"})

    response = await client.get(f"/documents/{created.json()['id']}/original")

    assert response.json()["type"] == "urn:docmill:problem:original-not-available"


async def test_url_and_content_together_are_refused(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/documents", json={"url": "https://example.com/", "content": "x"}
    )

    assert response.status_code == 422


async def test_non_http_url_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/documents", json={"url": "file:///etc/passwd"})

    assert response.status_code == 422
