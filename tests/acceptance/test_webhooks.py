"""Webhooks: outbox, signatures, retries, the deliveries list and redelivery."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from docmill.webhooks import verify
from tests.servers import Handler, local_server
from tests.support import wait_final

pytestmark = pytest.mark.anyio

MakeClient = Callable[..., Awaitable[httpx.AsyncClient]]
SECRET = "whsec-test"
FAST = {
    "fetch_allow_networks": ["127.0.0.1/32"],
    "webhook_secret": SECRET,
    "webhook_retry_base_seconds": 0.05,
    "webhook_max_attempts": 3,
}


async def wait_deliveries(
    client: httpx.AsyncClient, document_id: str, settled: Callable[[Any], bool]
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        rows = (await client.get(f"/documents/{document_id}/deliveries")).json()
        if rows and settled(rows):
            return list(rows)
        await asyncio.sleep(0.05)
    raise AssertionError(f"deliveries of {document_id} did not settle: {rows}")


def flaky(failures: int) -> Callable[[Handler], None]:
    calls = {"n": 0}

    def route(handler: Handler) -> None:
        calls["n"] += 1
        handler.answer(500 if calls["n"] <= failures else 204)

    return route


async def test_completion_is_posted_signed_after_a_500(
    make_client: MakeClient,
) -> None:
    client = await make_client(**FAST)
    with local_server({"/hook": flaky(1)}) as receiver:
        created = await client.post(
            "/documents",
            json={
                "content": "hello hooks",
                "client_ref": "ref-9",
                "callback_url": receiver.url("/hook"),
            },
        )
        document_id = created.json()["id"]
        rows = await wait_deliveries(
            client, document_id, lambda r: r[0]["status"] == "delivered"
        )
    last = receiver.received[-1]
    body = json.loads(last.body)

    assert (rows[0]["attempts"], rows[0]["event"]) == (2, "document.completed")
    assert verify(SECRET, last.headers["Docmill-Signature"], last.body)
    assert (body["document"]["id"], body["document"]["client_ref"]) == (
        document_id,
        "ref-9",
    )
    assert last.headers["Docmill-Delivery"] == f"{document_id}:1"


async def test_failure_is_announced_too(make_client: MakeClient) -> None:
    client = await make_client(**FAST)
    with local_server({"/hook": flaky(0)}) as receiver:
        created = await client.post(
            "/documents",
            files={"file": ("e.txt", b"")},
            data={"callback_url": receiver.url("/hook")},
        )
        await wait_deliveries(
            client, created.json()["id"], lambda r: r[0]["status"] == "delivered"
        )

    assert json.loads(receiver.received[-1].body)["event"] == "document.failed"


async def test_delivery_gives_up_after_the_limit_and_can_be_redelivered(
    make_client: MakeClient,
) -> None:
    client = await make_client(**FAST)
    with local_server({"/hook": flaky(99)}) as receiver:
        created = await client.post(
            "/documents",
            json={"content": "x", "callback_url": receiver.url("/hook")},
        )
        document_id = created.json()["id"]
        failed = await wait_deliveries(
            client, document_id, lambda r: r[0]["status"] == "failed"
        )
        tries = len(receiver.received)
        again = await client.post(f"/documents/{document_id}/deliveries/1/redeliver")
        await wait_deliveries(
            client,
            document_id,
            lambda r: r[0]["status"] == "failed" and r[0]["attempts"] == 3,
        )

    assert (failed[0]["attempts"], failed[0]["last_status_code"], tries) == (
        3,
        500,
        3,
    )
    assert (again.status_code, again.json()["status"]) == (202, "pending")
    assert len(receiver.received) == 6


async def test_global_webhook_url_receives_every_document(
    make_client: MakeClient,
) -> None:
    with local_server({"/all": flaky(0)}) as receiver:
        client = await make_client(**FAST, webhook_url=receiver.url("/all"))
        created = await client.post("/documents", json={"content": "x"})
        await wait_deliveries(
            client, created.json()["id"], lambda r: r[0]["status"] == "delivered"
        )

    assert len(receiver.received) == 1


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http://10.0.0.1/hook", id="private"),
        pytest.param("http://127.0.0.1:9/hook", id="loopback"),
        pytest.param("http://localhost/hook", id="localhost"),
        pytest.param("http://[::1]/hook", id="loopback-v6"),
        pytest.param("http://169.254.169.254/latest", id="cloud-metadata"),
    ],
)
async def test_callback_to_a_private_address_is_refused_at_submit(
    client: httpx.AsyncClient, url: str
) -> None:
    response = await client.post(
        "/documents", json={"content": "x", "callback_url": url}
    )
    listed = await client.get("/documents")

    assert (response.status_code, response.json()["type"]) == (
        422,
        "urn:docmill:problem:forbidden-address",
    )
    assert response.headers["content-type"] == "application/problem+json"
    assert listed.json()["items"] == []


async def test_upload_with_a_private_callback_is_refused(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/documents",
        files={"file": ("a.txt", b"x" * 100_000)},
        data={"callback_url": "http://127.0.0.1/hook"},
    )

    assert (response.status_code, response.json()["errors"][0]["loc"]) == (
        422,
        ["callback_url"],
    )


async def test_private_callback_is_accepted_when_its_network_is_allowed(
    make_client: MakeClient,
) -> None:
    client = await make_client(fetch_allow_networks=["127.0.0.0/8"])

    response = await client.post(
        "/documents", json={"content": "x", "callback_url": "http://127.0.0.1:9/h"}
    )

    assert response.status_code == 202


async def test_callback_that_resolves_private_later_is_not_sent(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name unresolvable at submit is accepted; delivery checks it again."""
    from docmill import fetch

    answers: list[list[str]] = []

    async def resolve(host: str, port: int) -> list[str]:
        if not answers:
            answers.append(["10.0.0.1"])
            raise OSError("name not known yet")
        return answers[0]

    monkeypatch.setattr(fetch, "resolve", resolve)
    created = await client.post(
        "/documents",
        json={"content": "x", "callback_url": "http://hooks.invalid/hook"},
    )

    rows = await wait_deliveries(
        client, created.json()["id"], lambda r: r[0]["status"] == "failed"
    )

    assert created.status_code == 202
    assert "private" in rows[0]["last_error"]


async def test_no_callback_means_no_deliveries(client: httpx.AsyncClient) -> None:
    created = await client.post("/documents", json={"content": "x"})
    await wait_final(client, created.json()["id"])

    rows = (await client.get(f"/documents/{created.json()['id']}/deliveries")).json()

    assert rows == []


async def test_redeliver_of_unknown_delivery_is_404(client: httpx.AsyncClient) -> None:
    created = await client.post("/documents", json={"content": "x"})

    response = await client.post(
        f"/documents/{created.json()['id']}/deliveries/7/redeliver"
    )

    assert response.json()["type"] == "urn:docmill:problem:delivery-not-found"


@pytest.mark.parametrize(
    "number",
    [
        pytest.param("3000000000", id="past-int32"),
        pytest.param("99999999999999999999999", id="past-int64"),
        pytest.param("0", id="zero"),
    ],
)
async def test_redeliver_of_an_out_of_range_number_is_422(
    client: httpx.AsyncClient, number: str
) -> None:
    created = await client.post("/documents", json={"content": "x"})

    response = await client.post(
        f"/documents/{created.json()['id']}/deliveries/{number}/redeliver"
    )

    assert (response.status_code, response.json()["type"]) == (
        422,
        "urn:docmill:problem:validation",
    )


def test_signature_of_other_bytes_does_not_verify() -> None:
    from docmill.webhooks import sign

    header = sign(SECRET, int(time.time()), b'{"a":1}')

    assert not verify(SECRET, header, b'{"a":2}')
