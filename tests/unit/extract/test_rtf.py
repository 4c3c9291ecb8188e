from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from striprtf.striprtf import rtf_to_text

from docmill.extract.base import ExtractContext
from docmill.extract.rtf import _rtf_to_text, extract_rtf

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


def test_striprtfs_own_loop_runs_if_its_internals_are_gone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from docmill.extract import rtf

    monkeypatch.setattr(rtf, "_OWN_LOOP", False)
    monkeypatch.setattr(rtf, "_rtf_to_text", None)  # would fail if called

    assert extract_rtf(POLISH, ExtractContext()).text == "zażółć gęślą jaźń\n"


# Pieces of RTF that steer striprtf's loop down each of its branches: groups
# and ignorable destinations, fonts with charsets, code pages (known,
# unknown, misspelt), \u escapes with their \uc skip counts, hex escapes
# (whole, cut short, in runs), escaped symbols, pictures, a hyperlink field,
# line breaks, and letters that match [a-z] only when case is ignored. A few
# pieces chain escapes whose meaning depends on the one before.
_RTF_PIECES = st.sampled_from(
    [
        "{",
        "}",
        "{\\rtf1\\ansi ",
        "\\par ",
        "\\line",
        "\\tab ",
        "\\*",
        "{\\*\\generator x;}",
        "{\\fonttbl{\\f0\\fcharset128 Gothic;}{\\f1\\fcharset0 Arial;}}",
        "{\\f2\\fcharset238 CE;}",
        "\\fonttbl",
        "\\f0 ",
        "\\f1",
        "\\f2 ",
        "\\deff0",
        "\\ansicpg1250",
        "\\ansicpg932 ",
        "\\ansicpg99999",
        "\\ansicpgx",
        "\\ANSICPG1251",
        "{\\info{\\title T}{\\author A}}",
        "\\title ",
        "\\u-10179?",
        "\\u8212 ",
        "\\u",
        "\\uc0 ",
        "\\uc2",
        "\\uc-1 ",
        "\\'e9",
        "\\'83\\'5d",
        "{\\*\\ansicpg1250}",
        "{\\title \\ansicpg932 {x}}",
        "\\uc-1 \\u8212 xy",
        "\\uc2\\u8212 \\'e9\\'e9\\'e9x",
        "\\u8212 \\'83\\'5d",
        "\\'8",
        "\\'zz",
        "\\\\",
        "\\{",
        "\\}",
        "\\~",
        "\\-",
        "\\_",
        "\\\u017f",
        "\\\u212ax",
        "{\\pict\\bin3 abc}",
        "{\\pict ab}",
        '{\\field{\\*\\fldinst{HYPERLINK "http://a.example/"}}{\\fldrslt{link}}}',
        "\\rquote ",
        "\\emdash",
        "\\cell ",
        "\r\n",
        "\n",
        "\r",
        " ",
        ";",
        "text",
        "é",
        "x" * 40,
        "\\" + "a" * 40,
        "\\",
    ]
)


def _striprtf_or_error(text: str, encoding: str) -> object:
    try:
        return rtf_to_text(text, encoding=encoding, errors="replace")
    except Exception as exc:
        return type(exc)


def _ours_or_error(text: str, encoding: str) -> object:
    try:
        return _rtf_to_text(text, encoding)
    except Exception as exc:
        return type(exc)


@settings(max_examples=1500, deadline=None)
@given(
    text=st.lists(_RTF_PIECES, max_size=40).map("".join),
    encoding=st.sampled_from(["cp1252", "cp932", "cp1250"]),
)
def test_the_text_is_striprtfs(text: str, encoding: str) -> None:
    assert _striprtf_or_error(text, encoding) == _ours_or_error(text, encoding)


def test_the_corpus_text_is_striprtfs(corpus_dir: Path) -> None:
    for path in sorted(corpus_dir.glob("rtf/*.rtf")):
        text = path.read_bytes().decode("latin-1")
        expected = rtf_to_text(text, encoding="cp1252", errors="replace")
        assert expected == _rtf_to_text(text, "cp1252"), path.name


def test_the_letters_are_those_striprtf_matches_ignoring_case() -> None:
    import re
    import sys

    from docmill.extract import rtf

    pairs = [
        (re.compile("[a-z]", re.IGNORECASE), re.compile(f"[{rtf._LETTERS}]")),
        (re.compile("[0-9a-f]", re.IGNORECASE), re.compile("[0-9a-fA-F]")),
    ]
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        for ignoring_case, spelt_out in pairs:
            assert bool(ignoring_case.fullmatch(char)) == bool(
                spelt_out.fullmatch(char)
            )
