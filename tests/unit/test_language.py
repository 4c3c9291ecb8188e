"""The language of the text fills ``metadata.language``, when there is enough text."""

from __future__ import annotations

import pytest

from docmill.extract.pipeline import detect_language


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
