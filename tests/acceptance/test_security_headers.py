"""The headers that keep browsers from misreading or framing what docmill serves."""

from __future__ import annotations

import base64
import hashlib
import re

import httpx
import pytest

pytestmark = pytest.mark.anyio


def _policy(response: httpx.Response) -> dict[str, str]:
    directives = response.headers["content-security-policy"].split(";")
    return dict(d.strip().partition(" ")[::2] for d in directives)


def _hash_of(page: str, element: str) -> str:
    body = re.search(f"<{element}>(.*?)</{element}>", page, re.DOTALL)
    assert body is not None
    digest = hashlib.sha256(body.group(1).encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


async def test_page_policy_allows_only_its_own_script_and_style(
    client: httpx.AsyncClient,
) -> None:
    """A browser runs the page's inline script only if its hash is listed."""
    response = await client.get("/")
    policy = _policy(response)

    assert (policy["script-src"], policy["style-src"], policy["default-src"]) == (
        _hash_of(response.text, "script"),
        _hash_of(response.text, "style"),
        "'none'",
    )


async def test_page_may_not_be_framed(client: httpx.AsyncClient) -> None:
    response = await client.get("/")

    assert (
        _policy(response)["frame-ancestors"],
        response.headers["x-frame-options"],
    ) == ("'none'", "DENY")


async def test_original_is_sandboxed(client: httpx.AsyncClient) -> None:
    """An uploaded HTML file opened from /original cannot run script here."""
    created = await client.post(
        "/documents",
        files={"file": ("evil.html", b"<script>alert(1)</script>", "text/html")},
    )

    response = await client.get(f"/documents/{created.json()['id']}/original")

    assert (
        _policy(response)["default-src"],
        "sandbox" in _policy(response),
        response.headers["x-content-type-options"],
        response.headers["x-frame-options"],
    ) == ("'none'", True, "nosniff", "DENY")


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/healthz", id="json"),
        pytest.param("/documents/nope", id="problem"),
        pytest.param("/documents?q=%00", id="nul-problem"),
        pytest.param("/openapi.json", id="openapi"),
        pytest.param("/no-such-path", id="unmatched"),
    ],
)
async def test_every_answer_is_nosniff(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)

    assert response.headers["x-content-type-options"] == "nosniff"
