"""The result budget: one document's text, Markdown and pages, children included."""

from __future__ import annotations

import io
from typing import Any

import docx
from pptx import Presentation

from docmill.extract.base import Limits
from docmill.extract.child import extract_in_process
from tests.support import zip_of

TITLE_AND_CONTENT = 1


def _deck(slides: int) -> bytes:
    deck = Presentation()
    for number in range(slides):
        slide = deck.slides.add_slide(deck.slide_layouts[TITLE_AND_CONTENT])
        slide.shapes.title.text = f"Slide {number}"
        slide.placeholders[1].text_frame.text = "a point worth making " * 5
    buffer = io.BytesIO()
    deck.save(buffer)
    return buffer.getvalue()


def _word(paragraphs: int) -> bytes:
    document = docx.Document()
    document.add_heading("Minutes", level=1)
    for number in range(paragraphs):
        document.add_paragraph(f"Item {number}: some words here.")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _extract(data: bytes, name: str, limits: Limits) -> dict[str, Any]:
    """What the extraction process sends its parent for ``data``."""
    return extract_in_process(data, name, limits)


def _strings(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(_strings(item) for item in value.values())
    if isinstance(value, list):
        return sum(_strings(item) for item in value)
    return 0


def _chars(result: dict[str, Any]) -> int:
    """What the budget counts in ``result``, its children included."""
    fields = ("metadata", "text", "markdown", "pages")
    size = sum(_strings(result[field]) for field in fields)
    for child in result["children"]:
        if child["result"] is not None:
            size += _chars(child["result"])
    return size


BUNDLE = zip_of({"deck.pptx": _deck(6), "minutes.docx": _word(40)})


def test_a_result_past_the_budget_is_cut_to_it() -> None:
    """
    The bundle's children (pages, Markdown) came on top of its text, each
    cut only at the text limit: the parent received several times that.
    """
    whole = _chars(_extract(BUNDLE, "bundle.zip", Limits()))
    budget = whole // 2

    cut = _extract(BUNDLE, "bundle.zip", Limits(max_result_chars=budget))

    assert (_chars(cut), whole) == (budget, whole)


def test_each_cut_is_a_warning_of_the_result_it_cut() -> None:
    whole = _extract(BUNDLE, "bundle.zip", Limits())
    deck = whole["children"][0]["result"]
    budget = _strings([whole["metadata"], whole["text"], deck["metadata"]]) + 10

    cut = _extract(BUNDLE, "bundle.zip", Limits(max_result_chars=budget))

    reason = f": the result, embedded documents included, holds at most {budget}"
    assert {
        child["name"]: child["result"]["warnings"] for child in cut["children"]
    } == {
        "deck.pptx": [
            "text cut at 10 characters" + reason,
            "markdown cut at 0 characters" + reason,
            "pages cut at 0 characters" + reason,
        ],
        "minutes.docx": [
            "metadata cut at 0 characters" + reason,
            "text cut at 0 characters" + reason,
            "markdown cut at 0 characters" + reason,
        ],
    }


def test_pages_past_the_budget_are_kept_empty() -> None:
    """The page count stays the document's though the pages' text is cut."""
    deck = _deck(3)
    whole = _extract(deck, "deck.pptx", Limits())
    budget = _chars(whole) - _strings(whole["pages"][1:]) + 4

    cut = _extract(deck, "deck.pptx", Limits(max_result_chars=budget))

    assert (cut["page_count"], cut["pages"]) == (
        3,
        [whole["pages"][0], whole["pages"][1][:4], ""],
    )


def test_a_hostile_title_is_cut_too() -> None:
    page = b"<title>" + b"t" * 5_000 + b"</title><p>Hello"

    cut = _extract(page, "page.html", Limits(max_result_chars=100))

    assert (cut["metadata"], cut["text"]) == (
        {"encoding": "utf-8", "title": "t" * 95},
        "",
    )


def test_a_result_within_the_budget_is_untouched() -> None:
    whole = _extract(BUNDLE, "bundle.zip", Limits())
    budget = _chars(whole)

    exact = _extract(BUNDLE, "bundle.zip", Limits(max_result_chars=budget))

    del whole["processing_ms"], exact["processing_ms"]
    assert exact == whole
