"""Hostile requests get clean problem answers and cannot forge log lines."""

from __future__ import annotations

import base64
import io
import json
import logging

import httpx
import pytest

from tests.support import wait_final, wait_logged

pytestmark = pytest.mark.anyio


async def test_nul_in_query_is_a_400_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/documents", params={"q": "a\x00b"})

    assert (response.status_code, response.headers["content-type"]) == (
        400,
        "application/problem+json",
    )
    assert "x-request-id" in response.headers


async def test_nul_problem_is_written_like_every_other_problem(
    client: httpx.AsyncClient,
) -> None:
    nul = await client.get("/documents", params={"q": "a\x00b"})
    other = await client.get("/documents/nope")

    assert (
        nul.content
        == json.dumps(
            {
                "type": "urn:docmill:problem:bad-request",
                "title": "Bad Request",
                "status": 400,
                "detail": "NUL characters are not allowed in URLs",
                "instance": "/documents",
            },
            separators=(",", ":"),
        ).encode()
    )
    assert b", " not in other.content


@pytest.mark.parametrize(
    "cursor",
    [
        pytest.param("2026-01-01T00:00:00+00:00|", id="empty-id"),
        pytest.param("2026-01-01T00:00:00|abc", id="naive-time"),
        pytest.param("abc", id="no-separator"),
    ],
)
async def test_forged_cursor_is_a_422(client: httpx.AsyncClient, cursor: str) -> None:
    forged = base64.urlsafe_b64encode(cursor.encode()).decode().rstrip("=")

    response = await client.get("/documents", params={"cursor": forged})

    assert response.status_code == 422


async def test_deeply_nested_metadata_is_a_422(client: httpx.AsyncClient) -> None:
    deep = '{"a":' + "[" * 5_000 + "]" * 5_000 + "}"

    response = await client.post(
        "/documents",
        files={"file": ("a.txt", io.BytesIO(b"x"))},
        data={"metadata": deep},
    )

    assert (response.status_code, response.json()["detail"]) == (
        422,
        "`metadata` is nested too deeply",
    )


async def test_deeply_nested_body_says_so(client: httpx.AsyncClient) -> None:
    deep = '{"content": "x", "metadata": {"a":' + "[" * 5_000 + "]" * 5_000 + "}}"

    response = await client.post(
        "/documents", content=deep, headers={"content-type": "application/json"}
    )

    assert (response.status_code, response.json()["detail"]) == (
        422,
        "the body is nested too deeply",
    )


def _nested(levels: int) -> dict[str, object]:
    """Metadata ``levels`` objects and arrays deep, itself included."""
    value: object = 1
    for _ in range(levels - 1):
        value = [value]
    return {"a": value}


async def test_metadata_too_deep_to_echo_is_refused(
    client: httpx.AsyncClient,
) -> None:
    """Deeper than pydantic serialises: it was stored, then every read a 500."""
    response = await client.post(
        "/documents", json={"content": "x", "metadata": _nested(300)}
    )

    assert (response.status_code, response.json()["errors"][0]["msg"]) == (
        422,
        "Value error, `metadata` is nested deeper than 64 levels",
    )


async def test_metadata_64_levels_deep_is_kept(client: httpx.AsyncClient) -> None:
    created = await client.post(
        "/documents", json={"content": "x", "metadata": _nested(64)}
    )

    read = await client.get(f"/documents/{created.json()['id']}")

    assert read.json()["metadata"] == _nested(64)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"content": "a\x00b"}, id="nul-content"),
        pytest.param({"content": "x", "title": "a\x00b"}, id="nul-title"),
        pytest.param({"content": "x", "metadata": {"k": "a\x00b"}}, id="nul-metadata"),
        pytest.param(
            {"content": "x", "metadata": {"k": "v" * 70_000}}, id="huge-metadata"
        ),
    ],
)
async def test_unstorable_fields_are_refused(
    client: httpx.AsyncClient, body: dict[str, object]
) -> None:
    response = await client.post("/documents", json=body)

    assert response.status_code == 422


# Raw JSON bodies: httpx would refuse to encode a lone surrogate itself, and a
# client sending the \ud800 escape is exactly the case.
LONE_SURROGATE_BODIES = [
    pytest.param('{"content": "bad \\ud800"}', id="content"),
    pytest.param('{"content": "ok", "title": "\\udfff"}', id="title"),
    pytest.param('{"content": "ok", "metadata": {"k": "\\ud800"}}', id="meta-value"),
    pytest.param('{"content": "ok", "metadata": {"\\ud800": 1}}', id="meta-key"),
]


@pytest.mark.parametrize("body", LONE_SURROGATE_BODIES)
async def test_lone_surrogates_are_a_422_and_store_nothing(
    client: httpx.AsyncClient, body: str
) -> None:
    response = await client.post(
        "/documents", content=body, headers={"content-type": "application/json"}
    )

    assert (response.status_code, response.headers["content-type"]) == (
        422,
        "application/problem+json",
    )
    listing = await client.get("/documents")
    assert (listing.status_code, listing.json()["items"]) == (200, [])


async def test_lone_surrogate_in_form_metadata_is_a_422(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/documents",
        files={"file": ("a.txt", io.BytesIO(b"x"))},
        data={"metadata": '{"k": "\\ud800"}'},
    )

    assert response.status_code == 422


def test_extracted_text_is_stored_without_nul_characters() -> None:
    from docmill.extract.base import ExtractionResult
    from docmill.extract.child import to_payload

    result = ExtractionResult("text/plain", "before\x00after", metadata={"t": "a\x00"})

    payload = to_payload(result, 1.0)

    assert (payload["text"], payload["metadata"], payload["char_count"]) == (
        "beforeafter",
        {"t": "a"},
        11,
    )


async def test_newline_in_path_cannot_forge_a_log_line(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="docmill.access"):
        await client.get("/documents/x%0AFORGED 200")

    lines = [r.getMessage() for r in caplog.records if r.name == "docmill.access"]
    assert lines and all("\n" not in line for line in lines)


async def test_health_answers_head(client: httpx.AsyncClient) -> None:
    response = await client.head("/healthz")

    assert response.status_code == 200


@pytest.mark.parametrize(
    ("invalidated", "status"),
    [
        pytest.param(True, 503, id="connection-dropped"),
        pytest.param(False, 500, id="other"),
    ],
)
async def test_dropped_database_connection_is_a_503(
    client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    invalidated: bool,
    status: int,
) -> None:
    from sqlalchemy.exc import DBAPIError

    from docmill.queue.store import JobStore

    async def lose_the_connection(self: object) -> None:
        raise DBAPIError(
            "SELECT", {}, Exception("boom"), connection_invalidated=invalidated
        )

    monkeypatch.setattr(JobStore, "queue_stats", lose_the_connection)

    response = await client.get("/metrics")

    assert (response.status_code, response.headers["content-type"]) == (
        status,
        "application/problem+json",
    )


def test_asyncpg_connection_errors_are_recognised_through_their_cause() -> None:
    asyncpg = pytest.importorskip("asyncpg", reason="the postgres extra is absent")
    from docmill.db.errors import lost_connection

    wrapped = RuntimeError("adapted driver error")
    wrapped.__cause__ = asyncpg.InternalClientError("cannot switch to state 12")

    assert (lost_connection(wrapped), lost_connection(RuntimeError("x"))) == (
        True,
        False,
    )


async def test_a_bad_file_is_a_warning_in_the_log_not_an_error(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="docmill.queue.worker"):
        created = await client.post(
            "/documents", files={"file": ("junk.pdf", b"%PDF-1.7\n\x00\x01 broken")}
        )
        document = await wait_final(client, created.json()["id"])
        await wait_logged(caplog, "document_failed", created.json()["id"])

    failed = [
        r for r in caplog.records if getattr(r, "action", None) == "document_failed"
    ]
    assert document["status"] == "failed"
    assert [r.levelno for r in failed] == [logging.WARNING]


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/documents/{}", id="document"),
        pytest.param("/documents/{}/text", id="text"),
        pytest.param("/parsers/{}", id="parser"),
    ],
)
async def test_a_long_unknown_id_is_not_echoed_whole(
    client: httpx.AsyncClient, path: str
) -> None:
    body = (await client.get(path.format("a" * 5000))).json()

    assert body["detail"].endswith(f"'{'a' * 64}'... (5000 characters)")
    assert {"document_id", "parser"} & set(body) == set()


@pytest.mark.parametrize(
    ("path", "instance"),
    [
        pytest.param(
            "/documents/" + "a" * 5000 + "/text",
            "/documents/" + "a" * 64 + ".../text",
            id="long-id",
        ),
        pytest.param("/x" * 3000, "/x" * 128 + "...", id="many-segments"),
        pytest.param(
            "/documents/" + "b" * 64, "/documents/" + "b" * 64, id="64-characters"
        ),
    ],
)
async def test_a_long_path_is_not_echoed_whole_as_the_instance(
    client: httpx.AsyncClient, path: str, instance: str
) -> None:
    body = (await client.get(path)).json()

    assert (body["status"], body["instance"]) == (404, instance)


async def test_an_unknown_short_id_is_named_in_full(client: httpx.AsyncClient) -> None:
    body = (await client.get("/documents/nosuchdocument")).json()

    assert (body["detail"], body["document_id"]) == (
        "no document with id 'nosuchdocument'",
        "nosuchdocument",
    )


async def test_a_foreign_cursor_is_a_422_with_errors(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/documents", params={"cursor": "not-ours"})

    assert (response.status_code, response.json()["errors"]) == (
        422,
        [
            {
                "loc": ["query", "cursor"],
                "msg": "not a cursor this API issued",
                "type": "value_error",
            }
        ],
    )


NON_FINITE = [
    pytest.param("1e400", id="overflow"),
    pytest.param("-1e400", id="negative-overflow"),
    pytest.param("NaN", id="nan"),
    pytest.param("Infinity", id="infinity"),
    pytest.param("-Infinity", id="negative-infinity"),
]


@pytest.mark.parametrize("number", NON_FINITE)
async def test_non_finite_number_in_metadata_is_a_422_and_stores_nothing(
    client: httpx.AsyncClient, number: str
) -> None:
    body = '{"content": "ok", "metadata": {"n": ' + number + "}}"

    response = await client.post(
        "/documents", content=body, headers={"content-type": "application/json"}
    )

    assert (response.status_code, response.json()["detail"]) == (
        422,
        f"the body holds {number}, which is not a finite number",
    )
    listing = await client.get("/documents")
    assert listing.json()["items"] == []


@pytest.mark.parametrize("number", NON_FINITE)
async def test_non_finite_number_in_form_metadata_is_a_422(
    client: httpx.AsyncClient, number: str
) -> None:
    response = await client.post(
        "/documents",
        files={"file": ("a.txt", io.BytesIO(b"x"))},
        data={"metadata": '{"n": [' + number + "]}"},
    )

    assert response.status_code == 422


async def test_non_finite_number_in_parser_rules_is_a_422(
    client: httpx.AsyncClient,
) -> None:
    body = '{"name": "p", "fields": {"a": {"regex": "x"}}, "version": NaN}'

    response = await client.post(
        "/parsers", content=body, headers={"content-type": "application/json"}
    )

    assert (response.status_code, response.json()["type"]) == (
        422,
        "urn:docmill:problem:invalid-rules",
    )
    assert "not a finite number" in response.json()["detail"]


async def test_large_finite_numbers_in_metadata_are_kept(
    client: httpx.AsyncClient,
) -> None:
    body = '{"content": "ok", "metadata": {"n": 1.5e308, "m": -2e-300}}'

    response = await client.post(
        "/documents", content=body, headers={"content-type": "application/json"}
    )
    read = await client.get(f"/documents/{response.json()['id']}")

    assert read.json()["metadata"] == {"n": 1.5e308, "m": -2e-300}
