"""Parsing rules over the API: parsers, submission with a parser, dry runs, export."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from tests.invoices import Sample, docx_invoice, html_receipt, pdf_invoice, xlsx_invoice
from tests.support import wait_final

pytestmark = pytest.mark.anyio

SAMPLES = [
    pytest.param(pdf_invoice, id="pdf-multipage"),
    pytest.param(docx_invoice, id="docx"),
    pytest.param(xlsx_invoice, id="xlsx"),
    pytest.param(html_receipt, id="html"),
    pytest.param(lambda: html_receipt(with_number=False), id="html-missing-number"),
]


@pytest.mark.parametrize("make", SAMPLES)
async def test_submitted_document_gains_fields(
    client: httpx.AsyncClient, make: Any
) -> None:
    sample: Sample = make()
    assert (
        await client.put(f"/parsers/{sample.rules['name']}", json=sample.rules)
    ).status_code == 200
    response = await client.post(
        "/documents",
        params={"parser": sample.rules["name"]},
        files={"file": (sample.filename, sample.data)},
    )
    assert response.status_code == 202, response.text
    document = await wait_final(client, response.json()["id"])
    assert document["status"] == "completed"

    fields = (await client.get(f"/documents/{document['id']}/fields")).json()
    result = (await client.get(f"/documents/{document['id']}")).json()["result"]

    assert (fields["fields"], fields["fields_errors"]) == (
        sample.expected,
        sample.errors,
    )
    assert (result["fields"], result["fields_errors"]) == (
        sample.expected,
        sample.errors,
    )


async def test_dry_run_reports_where_each_rule_matched(
    client: httpx.AsyncClient,
) -> None:
    sample = pdf_invoice(item_count=60)
    await client.post("/parsers", json=sample.rules)

    response = await client.post(
        "/parsers/acme-invoices/test", files={"file": (sample.filename, sample.data)}
    )

    body = response.json()
    assert body["fields"] == sample.expected
    assert body["matches"]["invoice_number"] == {
        "page": 1,
        "start": body["matches"]["invoice_number"]["start"],
        "end": body["matches"]["invoice_number"]["start"] + len("INV-2024-0042"),
        "text": "INV-2024-0042",
    }
    assert body["matches"]["total"]["page"] == 2
    assert body["matches"]["line_items"] == {"pages": [1, 2], "rows": 60}


async def test_dry_run_of_a_nameless_file_part_says_what_is_wrong(
    client: httpx.AsyncClient,
) -> None:
    """It was told there was no `file` part at all."""
    await client.post("/parsers", json=pdf_invoice().rules)
    body = (
        '--zz\r\nContent-Disposition: form-data; name="file"\r\n\r\n'
        "INV-2024-0042\r\n--zz--\r\n"
    )

    response = await client.post(
        "/parsers/acme-invoices/test",
        content=body.encode(),
        headers={"content-type": "multipart/form-data; boundary=zz"},
    )

    assert response.status_code == 422
    assert "has no filename" in response.json()["detail"]


async def test_dry_run_and_parse_on_a_stored_document(
    client: httpx.AsyncClient,
) -> None:
    sample = docx_invoice()
    await client.post("/parsers", json=sample.rules)
    queued = await client.post(
        "/documents", files={"file": (sample.filename, sample.data)}
    )
    document = await wait_final(client, queued.json()["id"])
    not_parsed = await client.get(f"/documents/{document['id']}/fields")

    dry = await client.post(
        "/parsers/bauer-invoices/test", json={"document_id": document["id"]}
    )
    parsed = await client.post(
        f"/documents/{document['id']}/parse", params={"parser": "bauer-invoices"}
    )

    assert not_parsed.status_code == 404
    assert dry.json()["fields"] == sample.expected
    assert parsed.json()["fields"] == sample.expected
    stored = await client.get(f"/documents/{document['id']}/fields")
    assert stored.json()["parser_version"] == 1


@pytest.mark.parametrize(
    ("field", "rule", "path"),
    [
        pytest.param(
            "total",
            {"rule": "regex", "pattern": "(?P<value>[0-9"},
            "fields.total.pattern",
            id="bad-regex",
        ),
        pytest.param(
            "total",
            {"rule": "after_label", "label": "Total", "type": "money"},
            "fields.total.type",
            id="unknown-type",
        ),
        pytest.param(
            "items",
            {"rule": "table", "columns": []},
            "fields.items.columns",
            id="table-without-columns",
        ),
        pytest.param("x", {"rule": "guess"}, "fields.x", id="unknown-rule-kind"),
    ],
)
async def test_invalid_rules_answer_422_with_the_rule_path(
    client: httpx.AsyncClient, field: str, rule: dict[str, Any], path: str
) -> None:
    response = await client.post(
        "/parsers", json={"name": "broken", "fields": {field: rule}}
    )

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["path"] == path


async def test_parsers_are_versioned(client: httpx.AsyncClient) -> None:
    rules = {"name": "v", "fields": {"a": {"rule": "constant", "value": "1"}}}
    first = await client.post("/parsers", json=rules)
    again = await client.post("/parsers", json=rules)
    rules["fields"]["a"]["value"] = "2"
    second = await client.put("/parsers/v", json=rules)

    assert (first.status_code, again.status_code, second.json()["version"]) == (
        201,
        409,
        2,
    )
    old = await client.get("/parsers/v", params={"version": 1})
    assert old.json()["rules"]["fields"]["a"]["value"] == "1"
    assert [p["version"] for p in (await client.get("/parsers")).json()["items"]] == [2]
    assert (await client.delete("/parsers/v")).status_code == 204
    assert (await client.get("/parsers/v")).status_code == 404


async def test_submission_with_unknown_parser_is_refused(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/documents",
        params={"parser": "nope"},
        json={"content": "Invoice No: 1"},
    )

    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["query", "parser"]


async def test_a_parser_deleted_before_the_run_is_named_on_the_document(
    make_client: Callable[..., Awaitable[httpx.AsyncClient]],
) -> None:
    intake = await make_client(workers=0)
    rules = {"name": "gone", "fields": {"a": {"rule": "constant", "value": "1"}}}
    await intake.post("/parsers", json=rules)
    created = await intake.post(
        "/documents", params={"parser": "gone"}, json={"content": "Invoice No: 1"}
    )
    await intake.delete("/parsers/gone")

    worker = await make_client()
    document = await wait_final(worker, created.json()["id"])
    fields = (await worker.get(f"/documents/{document['id']}/fields")).json()

    assert (document["status"], document["result"]["fields_errors"]) == (
        "completed",
        {
            "_parser": {
                "code": "parser_missing",
                "message": "parser 'gone' was deleted after the document was "
                "submitted; nothing was parsed",
            }
        },
    )
    assert (fields["parser_version"], fields["fields"]) == (0, {})


async def test_export_streams_one_row_per_document(
    client: httpx.AsyncClient,
) -> None:
    good, missing = html_receipt(), html_receipt(with_number=False)
    await client.post("/parsers", json=good.rules)
    ids = []
    for sample in (good, missing):
        response = await client.post(
            "/documents",
            params={"parser": "dupont-receipts"},
            files={"file": (sample.filename, sample.data)},
        )
        ids.append((await wait_final(client, response.json()["id"]))["id"])

    as_csv = await client.get(
        "/documents", params={"parser": "dupont-receipts", "format": "csv"}
    )
    as_jsonl = await client.get(
        "/documents", params={"parser": "dupont-receipts", "format": "jsonl"}
    )

    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert as_csv.headers["content-type"] == "text/csv; charset=utf-8"
    assert [(r["document_id"], r["receipt_number"], r["total"]) for r in rows] == [
        (ids[0], "R-551", good.expected["total"]),
        (ids[1], "", missing.expected["total"]),
    ]
    assert json.loads(rows[1]["fields_errors"]) == missing.errors
    assert json.loads(rows[0]["line_items"]) == good.expected["line_items"]
    lines = [json.loads(line) for line in as_jsonl.text.splitlines()]
    assert [line["fields"] for line in lines] == [good.expected, missing.expected]


FORMULAS = {
    "link": '=HYPERLINK("http://x.example","go")',
    "plus": "+1+2",
    "minus": "-2+3",
    "at": "@SUM(A1)",
    "plain": "a=b",
}


async def formula_export(
    client: httpx.AsyncClient, **params: str
) -> tuple[str, list[dict[str, Any]], str]:
    fields: dict[str, Any] = {
        name: {"rule": "constant", "value": value} for name, value in FORMULAS.items()
    }
    fields["negative"] = {"rule": "constant", "value": -5}
    fields["refund"] = {"rule": "constant", "value": "-12.50", "type": "decimal"}
    await client.post("/parsers", json={"name": "sheet", "fields": fields})
    response = await client.post(
        "/documents", params={"parser": "sheet"}, files={"file": ("=1+2.txt", b"x")}
    )
    document_id = (await wait_final(client, response.json()["id"]))["id"]
    as_csv = await client.get(
        "/documents", params={"parser": "sheet", "format": "csv", **params}
    )
    as_jsonl = await client.get(
        "/documents", params={"parser": "sheet", "format": "jsonl"}
    )
    rows = list(csv.DictReader(io.StringIO(as_csv.text, newline="")))
    return document_id, rows, as_jsonl.text


async def test_csv_export_neutralises_formulas(client: httpx.AsyncClient) -> None:
    document_id, rows, jsonl = await formula_export(client)

    assert rows == [
        {
            "document_id": document_id,
            "filename": "'=1+2.txt",
            "parser_version": "1",
            **{
                name: value if name == "plain" else "'" + value
                for name, value in FORMULAS.items()
            },
            "negative": "-5",
            "refund": "-12.50",
            "fields_errors": "",
        }
    ]
    line = json.loads(jsonl)
    assert (line["filename"], line["fields"]) == (
        "=1+2.txt",
        {**FORMULAS, "negative": "-5", "refund": "-12.50"},
    )


async def test_csv_export_keeps_formulas_when_asked(
    client: httpx.AsyncClient,
) -> None:
    _, rows, _ = await formula_export(client, escape_formulas="false")

    assert [rows[0][name] for name in FORMULAS] == list(FORMULAS.values())
    assert rows[0]["filename"] == "=1+2.txt"


async def test_documents_filter_by_parser(client: httpx.AsyncClient) -> None:
    rules = {"name": "notes", "fields": {"n": {"rule": "constant", "value": 1}}}
    assert (await client.post("/parsers", json=rules)).status_code == 201
    ids = {}
    for name, params in (("submitted", {"parser": "notes"}), ("other", {})):
        response = await client.post(
            "/documents", params=params, json={"content": "N1"}
        )
        ids[name] = (await wait_final(client, response.json()["id"]))["id"]
    later = await client.post("/documents", json={"content": "N2"})
    ids["parsed_later"] = (await wait_final(client, later.json()["id"]))["id"]
    await client.post(
        f"/documents/{ids['parsed_later']}/parse", params={"parser": "notes"}
    )

    def listed(answer: httpx.Response) -> set[str]:
        assert answer.status_code == 200
        return {item["id"] for item in answer.json()["items"]}

    assert listed(await client.get("/documents", params={"parser": "notes"})) == {
        ids["submitted"],
        ids["parsed_later"],
    }
    assert listed(await client.get("/documents", params={"parser": "unknown"})) == set()
    assert listed(await client.get("/documents", params={"parser": ""})) == set(
        ids.values()
    )


async def test_of_concurrent_creates_of_one_name_one_wins(
    client: httpx.AsyncClient,
) -> None:
    import asyncio

    def rules(n: int) -> dict[str, Any]:
        return {"name": "raced", "fields": {"v": {"rule": "constant", "value": n}}}

    answers = await asyncio.gather(
        *(client.post("/parsers", json=rules(n)) for n in range(8))
    )
    stored = (await client.get("/parsers/raced")).json()

    assert sorted(a.status_code for a in answers) == [201] + [409] * 7
    assert stored["version"] == 1


async def test_rules_and_dry_run_bodies_are_held_to_a_small_limit(
    client: httpx.AsyncClient,
) -> None:
    """Both were read whole with request.body(): no limit, no deadline."""
    from docmill.api.parsers import SMALL_BODY_BYTES

    big = b'{"name": "' + b"x" * SMALL_BODY_BYTES + b'"}'
    sent = 0

    async def streamed() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(1000):  # 64 MB if it were all read
            sent += 1
            yield b" " * 65536

    rules = await client.post(
        "/parsers", content=big, headers={"content-type": "application/json"}
    )
    chunked = await client.post(
        "/parsers", content=streamed(), headers={"content-type": "application/json"}
    )

    assert (rules.status_code, rules.json()["type"]) == (
        413,
        "urn:docmill:problem:too-large",
    )
    assert chunked.status_code == 413
    assert sent < 1000
