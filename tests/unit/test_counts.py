"""Word counts are runs between whitespace, as ``wc -w`` gives them."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from docmill.extract.pipeline import count_words


@pytest.mark.parametrize(
    ("text", "words"),
    [
        pytest.param("", 0, id="empty"),
        pytest.param("one", 1, id="one"),
        pytest.param("  leading and trailing  \n", 3, id="edges"),
        pytest.param("tabs\tand\r\nnewlines", 3, id="controls"),
        pytest.param("Grüße aus Köln", 3, id="non-ascii"),
        pytest.param("a - b", 3, id="punctuation-is-a-word"),
        # Only ASCII whitespace separates, in Latin-1 text and beyond.
        pytest.param("no\xa0break\x85next", 1, id="latin-1-spaces-join"),
        pytest.param("中文\u3000字 x", 2, id="wide-spaces-join"),
        pytest.param("lone \ud800 surrogate", 3, id="surrogate"),
    ],
)
def test_words_are_counted_between_whitespace(text: str, words: int) -> None:
    assert count_words(text) == words


def test_count_agrees_with_split_on_ascii_whitespace() -> None:
    text = "The quick  brown\tfox\njumps over\x0bthe lazy dog. " * 1000

    assert count_words(text) == len(text.split())


@settings(max_examples=500, deadline=None)
@given(text=st.text(alphabet="a0 \t\n\r\x0b\x0c\x1c\xa0\x85é字\ud800", max_size=40))
def test_count_is_the_number_of_runs_between_ascii_whitespace(text: str) -> None:
    # bytes.split() breaks at exactly the ASCII whitespace wc -w breaks at.
    assert count_words(text) == len(text.encode("utf-8", "surrogatepass").split())


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet="a0 \t\n\r\x0b\x0c\x1c\xa0\x85é字", max_size=40))
def test_the_utf8_bytes_count_as_the_text(text: str) -> None:
    assert count_words(text, text.encode("utf-8")) == count_words(text)


def test_the_bytes_of_a_text_that_lost_its_nuls_are_not_counted() -> None:
    # NUL is a word character until the payload drops it; bytes kept for
    # the text before that would count it as three words.
    from docmill.extract.base import ExtractionResult
    from docmill.extract.child import to_payload

    text = "\u5b57 \x00 \u5b57"
    result = ExtractionResult("text/plain", text, utf8=(text, text.encode()))
    payload = to_payload(result, 1.0)
    assert (payload["text"], payload["word_count"]) == ("\u5b57  \u5b57", 2)


def test_bytes_kept_for_another_text_are_not_counted() -> None:
    from docmill.extract.base import ExtractionResult
    from docmill.extract.child import to_payload

    result = ExtractionResult("text/plain", "\u5b57 \u5b57", utf8=("x", b"x"))
    assert to_payload(result, 1.0)["word_count"] == 2


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet="a0 \t\n\xa0é字", max_size=40), size=st.integers(1, 5))
def test_a_count_in_slices_is_the_count_in_one(text: str, size: int) -> None:
    # The slices are 64 KiB; small ones put words across every kind of cut.
    from docmill.extract import pipeline

    whole = count_words(text)
    original = pipeline._WORD_SLICE
    pipeline._WORD_SLICE = size
    try:
        assert count_words(text) == whole
    finally:
        pipeline._WORD_SLICE = original


def test_a_word_across_a_slice_boundary_counts_once() -> None:
    text = "x" * (64 * 1024 + 10) + " y"
    assert count_words(text) == 2
