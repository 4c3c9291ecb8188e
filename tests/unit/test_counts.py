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
