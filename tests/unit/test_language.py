"""The language of the text fills ``metadata.language``, when there is enough text."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from docmill.extract.pipeline import (
    _ENOUGH_LETTERS,
    _MIN_LANGUAGE_CHARS,
    _has_letters,
    _one_line,
    detect_language,
)


@pytest.mark.parametrize(
    ("text", "language"),
    [
        pytest.param(
            "The committee will publish its findings next week.", "en", id="en"
        ),
        pytest.param(
            "Le comité publiera ses conclusions la semaine prochaine.", "fr", id="fr"
        ),
        pytest.param(
            "Комитет опубликует свои выводы на следующей неделе.", "ru", id="ru"
        ),
        pytest.param(
            "委員会は来週その調査結果を発表する予定です。そして議論が続く。" * 2,
            "ja",
            id="ja",
        ),
    ],
)
def test_language_of_a_sentence_is_detected(text: str, language: str) -> None:
    assert detect_language(text) == language


def test_too_little_text_has_no_language() -> None:
    assert detect_language("Hi there") is None


_LETTER = re.compile(r"[^\W\d_]")


@settings(max_examples=500, deadline=None)
@given(text=st.text(alphabet="aé字Ж²½٣_1 \n\t\u0300.-", min_size=30, max_size=90))
def test_the_letter_floor_counts_letters_as_the_letter_pattern_does(
    text: str,
) -> None:
    """Letters are word characters that are no digit and no underscore."""
    enough = len(_LETTER.findall(text)) >= _MIN_LANGUAGE_CHARS
    assert enough == (_ENOUGH_LETTERS.match(text) is not None)


def test_forty_letters_among_digits_and_spaces_are_enough() -> None:
    text = " 1 ".join("é" * 40)
    assert _ENOUGH_LETTERS.match(text) is not None
    assert _ENOUGH_LETTERS.match(text[:-1]) is None


@pytest.mark.parametrize(
    ("text", "enough"),
    [
        pytest.param("word " * 10, True, id="ascii-head"),
        pytest.param("1 2 " * 80 + "word " * 10, True, id="letters-past-the-head"),
        pytest.param("é" * 39 + " 42", False, id="thirty-nine"),
        pytest.param("_" * 400 + "ж" * 40, True, id="non-ascii-past-the-head"),
    ],
)
def test_the_letter_floor_reads_the_whole_sample(text: str, enough: bool) -> None:
    assert _has_letters(text) is enough


# The bytes at which fastText's reader ends a word (``Dictionary::readWord``).
_FASTTEXT_SPACE = re.compile("[ \n\r\t\v\f\0]+")


def _fasttext_words(line: str) -> list[str]:
    return [word for word in _FASTTEXT_SPACE.split(line) if word]


@settings(max_examples=500, deadline=None)
@given(text=st.text(alphabet="ab \n\r\t\v\f\0\x1c\x1f\x85\xa0\u2003é", max_size=40))
def test_the_line_fed_to_fasttext_holds_the_words_python_splits(text: str) -> None:
    """fastText reads the same words as from the sample's words joined by spaces."""
    line = _one_line(text)
    assert "\n" not in line
    assert _fasttext_words(line) == _fasttext_words(" ".join(text.split()))


def test_an_ascii_sample_keeps_its_language_without_a_word_list() -> None:
    text = "The committee will publish\nits findings\n\nnext week, after the vote."
    assert _one_line(text) != " ".join(text.split())
    assert detect_language(text) == "en"
