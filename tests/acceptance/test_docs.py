"""The interactive docs: served from this server, or from the CDN with a note."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable

import httpx
import pytest

from docmill.api import docs

pytestmark = pytest.mark.anyio

MakeClient = Callable[..., Awaitable[httpx.AsyncClient]]


def _assets(page: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+\.(?:js|css|png))"', page)


async def test_swagger_ui_loads_only_from_this_server(
    client: httpx.AsyncClient,
) -> None:
    page = (await client.get("/docs")).text

    assert _assets(page) == [
        "/docs-assets/swagger-ui.css",
        "/docs-assets/favicon.png",
        "/docs-assets/swagger-ui-bundle.js",
    ]


async def test_redoc_loads_only_from_this_server(client: httpx.AsyncClient) -> None:
    page = (await client.get("/redoc")).text

    assert sorted(_assets(page)) == [
        "/docs-assets/favicon.png",
        "/docs-assets/redoc.standalone.js",
    ]


@pytest.mark.parametrize("name", docs.ASSET_FILES)
async def test_docs_assets_are_served(client: httpx.AsyncClient, name: str) -> None:
    response = await client.get(f"/docs-assets/{name}")

    assert (response.status_code, len(response.content) > 1000) == (200, True)


async def test_swagger_ui_oauth2_redirect_is_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs/oauth2-redirect")

    assert (response.status_code, "<script" in response.text) == (200, True)


async def test_docs_may_not_be_framed(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")

    assert response.headers["x-frame-options"] == "DENY"


async def test_without_the_extra_docs_say_they_need_the_cdn(
    make_client: MakeClient,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(docs, "local_assets", lambda: None)
    with caplog.at_level(logging.INFO, logger="docmill.api.docs"):
        client = await make_client()
    page = (await client.get("/docs")).text

    assert _assets(page) == [
        docs.CDN["swagger-ui.css"],
        docs.CDN["favicon.png"],
        docs.CDN["swagger-ui-bundle.js"],
    ]
    assert docs.CDN_NOTE.format(tool="Swagger UI", openapi="/openapi.json") in page
    actions = [
        getattr(r, "action", None)
        for r in caplog.records
        if r.name == "docmill.api.docs"
    ]
    assert actions == ["docs_from_cdn"]


async def test_without_the_extra_redoc_says_it_needs_the_cdn(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(docs, "local_assets", lambda: None)
    client = await make_client()
    page = (await client.get("/redoc")).text
    note = docs.CDN_NOTE.format(tool="ReDoc", openapi="/openapi.json")

    assert sorted(_assets(page)) == sorted(
        [docs.CDN["favicon.png"], docs.CDN["redoc.standalone.js"]]
    )
    assert f'<redoc spec-url="/openapi.json">{note}</redoc>' in page


async def test_with_the_extra_the_docs_carry_no_cdn_note(
    client: httpx.AsyncClient,
) -> None:
    pages = [(await client.get(path)).text for path in ("/docs", "/redoc")]

    assert ["cdn.jsdelivr.net" in page for page in pages] == [False, False]


async def test_without_the_extra_nothing_is_served_as_assets(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(docs, "local_assets", lambda: None)
    client = await make_client()

    response = await client.get("/docs-assets/swagger-ui-bundle.js")

    assert response.status_code == 404


def test_the_docs_extra_is_what_the_tests_run_with() -> None:
    """The test extra installs fastapi-offline, so the local path is tested."""
    assert docs.local_assets() is not None
