from __future__ import annotations

from docmill.extract.base import ExtractContext
from docmill.extract.rtf import extract_rtf

POLISH = (
    rb"{\rtf1\ansi\ansicpg1250\deff0{\fonttbl{\f0\fswiss\fcharset238 Arial CE;}}"
    rb"{\info{\title Pangram}{\author Jan Kowalski}}"
    rb"\pard\f0 za\'bf\'f3\'b3\'e6 g\'ea\'9cl\'b9 ja\'9f\'f1\par}"
)


def test_hex_escapes_decode_with_the_document_code_page() -> None:
    assert extract_rtf(POLISH, ExtractContext()).text == "zażółć gęślą jaźń\n"


def test_metadata_has_the_code_page_title_and_author() -> None:
    assert extract_rtf(POLISH, ExtractContext()).metadata == {
        "codepage": 1250,
        "title": "Pangram",
        "author": "Jan Kowalski",
    }


def test_unicode_escapes_beyond_the_bmp_become_one_character() -> None:
    data = rb"{\rtf1\ansi\uc1 smile \u-10179?\u-8704? done\par}"
    assert extract_rtf(data, ExtractContext()).text == "smile \U0001f600 done\n"


def test_shift_jis_escapes_decode_with_the_font_charset() -> None:
    data = (
        rb"{\rtf1\ansi\ansicpg932{\fonttbl{\f0\fcharset128 MS Gothic;}}"
        rb"\f0 \'83\'5d\'83\'8b\'83\'51\par}"
    )
    assert extract_rtf(data, ExtractContext()).text == "ゾルゲ\n"


def test_raw_bytes_outside_escapes_decode_with_the_code_page() -> None:
    data = "{\\rtf1\\ansi\\ansicpg1251 Привет\\par}".encode("cp1251")
    assert extract_rtf(data, ExtractContext()).text == "Привет\n"
