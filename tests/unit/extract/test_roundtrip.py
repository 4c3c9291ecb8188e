"""
Text written in an encoding docmill must detect comes back out unchanged.

The whitespace rule: plain text comes back exactly (the alphabet holds no
carriage return, and the BOM is not text); HTML comes back with every run of
spaces and line breaks made one space and none at either end, as a browser
shows a paragraph.

Legacy single-byte and double-byte encodings carry no mark, so the only
evidence of which one wrote a text is how plausible each decoding looks. For
a few random characters that evidence does not exist (the bytes of "Ãé" are
as likely Latin-1 as cp1251 or KOI8-R), and even thirty words of Russian are
ambiguous when they are thirty times "в". So those encodings are tested with
every word of a short vocabulary of a language the encoding was made for,
shuffled and followed by more of its words: prose, the case detection is
meant to solve. UTF-8 and the UTF encodings with
a mark are exact and are tested on any printable text.
"""

# ruff: noqa: RUF001  (the Cyrillic in the test texts is meant)
from __future__ import annotations

import html
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from docmill.extract import mime
from docmill.extract.base import ExtractContext
from docmill.extract.html import extract_html
from docmill.extract.text import extract_text

PRINTABLE = st.text(
    st.characters(blacklist_categories=("Cs",)).filter(
        lambda char: char.isprintable() or char == "\n"
    ),
    min_size=1,
)
# Common words outnumber accented ones, as in running prose: a text of
# nothing but "côté époque" is not French any detector should recognise.
FRENCH_PROSE = (
    "le théâtre de Molière est joué partout en Europe et ses comédies sont "
    "écrites dans un français élégant qui décrit les mœurs de son temps dans "
    "une ville où le roi et la cour vont au marché pour voir le peuple rire "
    "de tout ce que la vie offre à ceux qui savent la regarder"
)
FRENCH_WORDS = FRENCH_PROSE.split()
RUSSIAN_PROSE = (
    "в гимназии он не был в числе первых учеников но учился прилежно и "
    "прочитал всё что было в библиотеке его отца однажды в студеную зимнюю "
    "пору я из лесу вышел был сильный мороз"
)
RUSSIAN_WORDS = RUSSIAN_PROSE.split()


def _text_of(data: bytes) -> str:
    ctx = ExtractContext()
    ctx.media_type = mime.TEXT
    return extract_text(data, ctx).text


def _words(vocabulary: list[str]) -> st.SearchStrategy[str]:
    shuffled = st.permutations(vocabulary)
    more = st.lists(st.sampled_from(vocabulary))
    return st.tuples(shuffled, more).map(lambda parts: " ".join(parts[0] + parts[1]))


@given(PRINTABLE, st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-32"]))
def test_unicode_text_survives_every_utf_encoding(text: str, codec: str) -> None:
    assert _text_of(text.encode(codec)) == text


@settings(deadline=None)
@given(_words(FRENCH_WORDS))
def test_french_prose_survives_cp1252(text: str) -> None:
    assert _text_of(text.encode("cp1252")) == text


@settings(deadline=None)
@given(_words(RUSSIAN_WORDS), st.sampled_from(["koi8_r", "cp1251"]))
def test_russian_prose_survives_cyrillic_code_pages(text: str, codec: str) -> None:
    assert _text_of(text.encode(codec)) == text


@settings(deadline=None)
@given(PRINTABLE, st.sampled_from(["utf-8", "utf-16"]))
def test_html_paragraph_text_survives_with_whitespace_collapsed(
    text: str, codec: str
) -> None:
    page = f"<!DOCTYPE html><html><body><p>{html.escape(text)}</p></body></html>"
    expected = re.sub(r"[ \n]+", " ", text).strip(" ")
    assert extract_html(page.encode(codec), ExtractContext()).text == expected
