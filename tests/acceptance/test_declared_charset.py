# ruff: noqa: RUF001  (the Greek and Cyrillic in the test texts are meant)
"""
An upload's declared charset (``Content-Type: text/plain; charset=...`` on
its ``file`` part), through the API and a worker, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import io
from typing import Any

import httpx
import pytest

from tests.support import wait_final

pytestmark = pytest.mark.anyio

# Short legacy texts that detection reads wrong: as cp1252 ("ÃåéÜ óïõ")
# and as cp932 ("榘ﾓﾋﾗﾁ").
GREEK = "Γειά σου\n"
RUSSIAN = "Москва\n"


async def upload(
    client: httpx.AsyncClient,
    data: bytes,
    content_type: str | None,
    **form: str,
) -> httpx.Response:
    part: tuple[Any, ...] = ("note.txt", io.BytesIO(data))
    if content_type is not None:
        part = (*part, content_type)
    return await client.post("/documents", files={"file": part}, data=form)


@pytest.mark.parametrize(
    ("text", "codec", "charset"),
    [
        pytest.param(GREEK, "cp1253", "windows-1253", id="windows-1253"),
        pytest.param(RUSSIAN, "koi8_r", "KOI8-R", id="koi8-r"),
    ],
)
async def test_a_declared_charset_reads_a_short_legacy_text(
    client: httpx.AsyncClient, text: str, codec: str, charset: str
) -> None:
    created = await upload(client, text.encode(codec), f"text/plain; charset={charset}")
    body = await wait_final(client, created.json()["id"])
    read = await client.get(f"/documents/{body['id']}/text")

    assert (created.status_code, created.json()["charset"]) == (202, charset)
    assert body["charset"] == charset
    assert (read.text, body["result"]["metadata"]["encoding"]) == (text, codec)


async def test_a_declared_charset_outranks_an_html_meta_charset(
    client: httpx.AsyncClient,
) -> None:
    """The transport's charset before the page's own, as browsers read it."""
    page = f'<html><head><meta charset="utf-8"></head><body><p>{GREEK}</p></body>'

    created = await upload(
        client, page.encode("cp1253"), "text/html; charset=windows-1253"
    )
    body = await wait_final(client, created.json()["id"])
    read = await client.get(f"/documents/{body['id']}/text")

    assert read.text == GREEK.strip()


async def test_a_declaration_that_does_not_decode_falls_back_to_detection(
    client: httpx.AsyncClient,
) -> None:
    data = GREEK.encode("cp1253")
    undeclared = await upload(client, data, None)
    declared = await upload(client, data, "text/plain; charset=utf-8")

    guessed = await wait_final(client, undeclared.json()["id"])
    body = await wait_final(client, declared.json()["id"])

    assert body["result"]["metadata"] == guessed["result"]["metadata"]
    assert body["result"]["warnings"] == [
        "the declared charset 'utf-8' was not used (the bytes do not decode "
        f"with it); read as {guessed['result']['metadata']['encoding']}"
    ]


@pytest.mark.parametrize(
    "charset",
    [
        pytest.param("klingon-8", id="unknown"),
        pytest.param("base64", id="bytes-to-bytes"),
        pytest.param("undefined", id="refuses-everything"),
    ],
)
async def test_a_charset_that_is_no_text_encoding_is_422(
    client: httpx.AsyncClient, charset: str
) -> None:
    response = await upload(client, b"words", f"text/plain; charset={charset}")
    listed = (await client.get("/documents")).json()["items"]

    assert (response.status_code, response.json()["errors"][0]["loc"]) == (
        422,
        ["file", "charset"],
    )
    assert f"unknown charset {charset!r}" in response.json()["detail"]
    assert listed == []


async def test_a_charset_with_a_nul_is_422_not_500(
    client: httpx.AsyncClient,
) -> None:
    """A NUL made Python's codec lookup raise ValueError past the 422."""
    boundary = "nul-in-charset"
    body = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="a.txt"\r\n'
        "Content-Type: text/plain; charset=utf-8\x00\r\n\r\n"
        f"words\r\n--{boundary}--\r\n"
    ).encode()

    response = await client.post(
        "/documents",
        content=body,
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )

    assert (response.status_code, response.json()["errors"][0]["loc"]) == (
        422,
        ["file", "charset"],
    )


async def test_dedupe_does_not_reuse_a_result_read_in_another_charset(
    client: httpx.AsyncClient,
) -> None:
    data = GREEK.encode("cp1253")
    first = await upload(client, data, None, dedupe="true")
    await wait_final(client, first.json()["id"])

    second = await upload(
        client, data, "text/plain; charset=windows-1253", dedupe="true"
    )
    body = await wait_final(client, second.json()["id"])
    read = await client.get(f"/documents/{body['id']}/text")

    assert (body["duplicate_of"], read.text) == (None, GREEK)


async def test_an_idempotency_key_reused_with_another_charset_is_409(
    client: httpx.AsyncClient,
) -> None:
    """The same bytes declared otherwise are another request: another text."""
    data = GREEK.encode("cp1253")
    headers = {"Idempotency-Key": "greek-1"}
    first = await client.post(
        "/documents",
        files={"file": ("el.txt", io.BytesIO(data), "text/plain; charset=cp1253")},
        headers=headers,
    )

    again = await client.post(
        "/documents", files={"file": ("el.txt", io.BytesIO(data))}, headers=headers
    )

    assert (first.status_code, again.status_code) == (202, 409)


async def test_each_part_of_a_batch_keeps_its_own_charset(
    client: httpx.AsyncClient,
) -> None:
    files = [
        (
            "file",
            (
                "el.txt",
                io.BytesIO(GREEK.encode("cp1253")),
                "text/plain; charset=windows-1253",
            ),
        ),
        (
            "file",
            (
                "ru.txt",
                io.BytesIO(RUSSIAN.encode("koi8_r")),
                "text/plain; charset=koi8-r",
            ),
        ),
    ]

    response = await client.post("/documents/batch", files=files)
    texts = []
    for item in response.json()["items"]:
        await wait_final(client, item["document"]["id"])
        texts.append(
            (await client.get(f"/documents/{item['document']['id']}/text")).text
        )

    assert texts == [GREEK, RUSSIAN]


async def test_a_batch_part_with_an_unknown_charset_fails_alone(
    client: httpx.AsyncClient,
) -> None:
    """
    The whole batch was 422, and the large part before it stayed in storage,
    owned by no document.
    """
    large = b"plain words\n" * 20_000  # streamed to storage, not held
    files = [
        ("file", ("a.txt", io.BytesIO(large), "text/plain")),
        ("file", ("b.txt", io.BytesIO(b"words"), "text/plain; charset=klingon-8")),
        (
            "file",
            (
                "c.txt",
                io.BytesIO(RUSSIAN.encode("koi8_r")),
                "text/plain; charset=koi8-r",
            ),
        ),
    ]

    response = await client.post("/documents/batch", files=files)
    items = response.json()["items"]

    assert [item["status"] for item in items] == [202, 422, 202]
    assert items[1]["error"]["errors"][0]["loc"] == ["file", "charset"]
    assert [items[0]["document"]["size_bytes"], items[2]["document"]["charset"]] == [
        len(large),
        "koi8-r",
    ]


async def test_a_parsers_dry_run_reads_the_upload_in_its_charset(
    client: httpx.AsyncClient,
) -> None:
    rules = {
        "name": "cities",
        "fields": {"city": {"rule": "after_label", "label": "Город"}},
    }
    await client.put("/parsers/cities", json=rules)
    data = "Город: Москва\n".encode("koi8_r")

    response = await client.post(
        "/parsers/cities/test",
        files={"file": ("note.txt", data, "text/plain; charset=koi8-r")},
    )

    assert response.json()["fields"] == {"city": "Москва"}
