"""The rule kinds over extracted text, and the per-field error report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from docmill.extract.base import Limits
from docmill.extract.child import extract_in_process
from docmill.parsing.engine import ParseInput, apply_parser
from docmill.parsing.errors import InvalidRules
from docmill.parsing.rules import load_spec, validate_spec
from tests.invoices import (
    Sample,
    docx_invoice,
    html_receipt,
    pdf_invoice,
    xlsx_invoice,
)


def _run(fields: dict[str, Any], text: str, **document: Any) -> Any:
    spec = validate_spec({"name": "t", "fields": fields})
    return apply_parser(spec, ParseInput(text=text, **document))


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(pdf_invoice, id="pdf-multipage"),
        pytest.param(docx_invoice, id="docx"),
        pytest.param(xlsx_invoice, id="xlsx"),
        pytest.param(html_receipt, id="html"),
        pytest.param(lambda: html_receipt(with_number=False), id="html-missing"),
    ],
)
def test_generated_documents_give_their_known_fields(make: Any, tmp_path: Path) -> None:
    sample: Sample = make()
    path = tmp_path / sample.filename
    path.write_bytes(sample.data)
    payload = extract_in_process(path, sample.filename, Limits())
    document = ParseInput(
        text=payload["text"],
        pages=payload["pages"],
        markdown=payload["markdown"],
        mime_type=payload["mime_type"],
        metadata=payload["metadata"],
        filename=sample.filename,
        original=path,
    )

    outcome = apply_parser(validate_spec(sample.rules), document)

    assert (outcome.fields, outcome.errors) == (sample.expected, sample.errors)


@pytest.mark.parametrize("held", ["file", "bytes"])
def test_pdf_table_spans_pages_and_skips_repeated_headers(
    tmp_path: Path, held: str
) -> None:
    """A worker holds a small original's bytes, a larger one's file."""
    sample = pdf_invoice(item_count=60)
    path = tmp_path / "a.pdf"
    path.write_bytes(sample.data)
    payload = extract_in_process(path, None, Limits())

    outcome = apply_parser(
        validate_spec(sample.rules),
        ParseInput(
            text=payload["text"],
            pages=payload["pages"],
            mime_type=payload["mime_type"],
            original=path if held == "file" else sample.data,
        ),
    )

    assert outcome.matches["line_items"] == {"pages": [1, 2], "rows": 60}


def test_after_label_reads_the_next_line_when_the_label_stands_alone() -> None:
    outcome = _run(
        {"n": {"rule": "after_label", "label": "invoice number"}},
        "ACME\nINVOICE NUMBER\n\n  B-7781\nTotal 5",
    )

    assert outcome.fields == {"n": "B-7781"}
    assert outcome.matches["n"] == {
        "page": None,
        "start": 23,
        "end": 29,
        "text": "B-7781",
    }


def test_after_label_does_not_match_inside_a_longer_word() -> None:
    outcome = _run(
        {"t": {"rule": "after_label", "label": "Total", "type": "decimal"}},
        "Subtotal: 10.00\nTotal: 12.00",
    )

    assert outcome.fields == {"t": "12.00"}


def test_regex_on_a_page_range_reports_the_page() -> None:
    pages = ["Ref A-1", "Ref B-2", "Ref C-3"]
    outcome = _run(
        {"ref": {"rule": "regex", "pattern": r"Ref (?P<value>\S+)", "pages": "2-"}},
        "\n\n".join(pages),
        pages=pages,
    )

    assert outcome.fields == {"ref": "B-2"}
    assert outcome.matches["ref"] == {"page": 2, "start": 13, "end": 16, "text": "B-2"}


def test_last_page_and_last_occurrence() -> None:
    pages = ["Total 1", "Total 2\nTotal 3"]
    outcome = _run(
        {
            "t": {
                "rule": "after_label",
                "label": "Total",
                "type": "integer",
                "pages": "last",
                "occurrence": "last",
            }
        },
        "\f".join(pages),
        pages=pages,
    )

    assert outcome.fields == {"t": 3}


def test_invalid_value_is_a_field_error_not_a_failure() -> None:
    outcome = _run(
        {
            "due": {"rule": "between", "start": "Due", "end": "."},
            "when": {"rule": "regex", "pattern": r"On (?P<value>\S+)", "type": "date"},
        },
        "Due soon. On 31/02/2024",
    )

    assert outcome.fields == {"due": "soon", "when": None}
    assert outcome.errors == {
        "when": {
            "code": "invalid",
            "message": (
                "'31/02/2024' is not a valid date: day is out of range for month"
            ),
            "raw": "31/02/2024",
        }
    }


def test_catastrophic_pattern_times_out_as_a_field_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("docmill.parsing.engine.REGEX_TIMEOUT_SECONDS", 0.05)

    outcome = _run(
        {"x": {"rule": "regex", "pattern": r"(?P<value>(a|aa)+c)"}}, "a" * 40
    )

    assert outcome.errors["x"]["code"] == "timeout"


def test_constant_and_metadata_rules() -> None:
    outcome = _run(
        {
            "supplier": {"rule": "constant", "value": "ACME"},
            "file": {"rule": "metadata", "key": "filename"},
            "author": {"rule": "metadata", "key": "metadata.author"},
            "ticket": {"rule": "metadata", "key": "user.ticket", "type": "integer"},
            "pages": {"rule": "metadata", "key": "page_count", "type": "integer"},
        },
        "x",
        filename="a.pdf",
        metadata={"author": "Finance"},
        user_metadata={"ticket": 42},
        pages=["x"],
    )

    assert outcome.fields == {
        "supplier": "ACME",
        "file": "a.pdf",
        "author": "Finance",
        "ticket": 42,
        "pages": 1,
    }


def test_load_spec_reads_yaml_and_reports_rule_paths() -> None:
    text = "name: p\nfields:\n  a: {rule: regex, pattern: '(?P<value>['}\n"

    with pytest.raises(InvalidRules) as caught:
        load_spec(text, "p.yaml")

    assert caught.value.errors[0]["path"] == "fields.a.pattern"
