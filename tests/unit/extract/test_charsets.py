# ruff: noqa: RUF001  (the Greek and Cyrillic in the test texts are meant)
"""A charset declared with the document, and where it ranks (``charsets``)."""

from __future__ import annotations

import codecs
import io
import zipfile

import pytest

from docmill.exceptions import UnknownCharset, UnsupportedFormat
from docmill.extract.base import ExtractContext, ExtractionResult
from docmill.extract.charsets import declared_codec, decode_declared
from docmill.extract.pipeline import extract_document

GREEK = "Γειά σου\n"


def extract(data: bytes, charset: str | None) -> ExtractionResult:
    return extract_document(data, ExtractContext(charset=charset), "note")


@pytest.mark.parametrize(
    ("label", "codec"),
    [
        pytest.param("windows-1253", "cp1253", id="windows"),
        pytest.param(" KOI8-R ", "koi8_r", id="spaced-upper"),
        pytest.param("utf-16le", "utf-16-le", id="utf-16"),
    ],
)
def test_a_known_label_gives_its_codec(label: str, codec: str) -> None:
    assert declared_codec(label) == codec


@pytest.mark.parametrize(
    "label",
    [
        "klingon-8",
        "base64",
        "rot13",
        "zlib",
        "undefined",
        "idna",
        "unicode_escape",
        # codecs.lookup raised ValueError for these, not LookupError.
        "utf-8\x00",
        "\x00",
        "utf-8\x01",
    ],
)
def test_a_label_that_is_no_charset_is_refused(label: str) -> None:
    with pytest.raises(UnknownCharset):
        declared_codec(label)


def test_a_label_longer_than_a_charset_name_is_refused() -> None:
    """Python folds the dashes to one: it would name cp1253, in 47 characters."""
    with pytest.raises(UnknownCharset):
        declared_codec("windows" + "-" * 36 + "1253")


def test_a_byte_order_mark_outranks_the_declaration() -> None:
    data = codecs.BOM_UTF8 + "Grüße\n".encode()

    decoded = decode_declared(data, "windows-1253")

    assert (decoded.text, decoded.encoding) == ("Grüße\n", "utf-8")


def test_the_declaration_outranks_strict_utf8() -> None:
    """UTF-8 bytes declared Latin-1 are the sender's word (and rare)."""
    decoded = decode_declared("Ã©".encode("cp1252"), "windows-1252")

    assert (decoded.text, decoded.encoding) == ("Ã©", "cp1252")


@pytest.mark.parametrize("label", ["us-ascii", "ASCII", "ansi_x3.4-1968"])
def test_bytes_past_ascii_overrule_a_declaration_of_ascii(label: str) -> None:
    """US-ASCII says every byte is below 0x80; UTF-8 sent so is still UTF-8."""
    decoded = decode_declared("café crème\n".encode(), label)

    assert (decoded.text, decoded.encoding) == ("café crème\n", "utf-8")


def test_ascii_bytes_declared_ascii_read_as_declared() -> None:
    decoded = decode_declared(b"plain words\n", "us-ascii")

    assert (decoded.text, decoded.encoding) == ("plain words\n", "cp1252")


@pytest.mark.parametrize(
    ("data", "charset", "text"),
    [
        pytest.param(GREEK.encode("cp1253"), "windows-1253", GREEK, id="text"),
        pytest.param(
            "a;b\r\nДа;Нет\r\n".encode("cp1251"),
            "windows-1251",
            "a;b\nДа;Нет\n",
            id="csv-crlf",
        ),
        pytest.param(
            '{"город": "Москва"}'.encode("koi8_r"),
            "koi8-r",
            "город: Москва",
            id="json",
        ),
        pytest.param(
            "Γειά σου κόσμε, καλημέρα\n".encode("utf-16-le"),
            "utf-16le",
            "Γειά σου κόσμε, καλημέρα\n",
            id="utf-16-without-a-mark",
        ),
        pytest.param(
            "北京是中国的首都。\n".encode("utf-16-be"),
            "utf-16be",
            "北京是中国的首都。\n",
            id="utf-16-cjk-without-a-mark",
        ),
        pytest.param(
            f"<?xml version='1.0' encoding='utf-8'?><p>{GREEK}</p>".encode("cp1253"),
            "windows-1253",
            GREEK.strip(),
            id="xml-over-its-prolog",
        ),
    ],
)
def test_text_formats_read_the_declared_charset(
    data: bytes, charset: str, text: str
) -> None:
    result = extract(data, charset)

    assert (result.text.strip(), result.warnings) == (text.strip(), [])


@pytest.mark.parametrize("charset", ["windows-1252", "utf-16le", "koi8-r"])
def test_a_declaration_does_not_make_a_binary_text(charset: str) -> None:
    binary = b"\x00\x01\x02\x03garbage\x00\xff\xfe\x10" * 64

    with pytest.raises(UnsupportedFormat):
        extract(binary, charset)


def test_a_declaration_that_does_not_decode_is_a_warning() -> None:
    data = GREEK.encode("cp1253")
    guessed = extract(data, None)

    result = extract(data, "shift_jis")

    assert (result.text, result.metadata) == (guessed.text, guessed.metadata)
    assert result.warnings == [
        "the declared charset 'shift_jis' was not used (the bytes do not decode "
        f"with it); read as {guessed.metadata['encoding']}"
    ]


def test_a_zip_ignores_the_declaration_and_its_members_do_not_inherit_it() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("el.txt", GREEK.encode("cp1253"))
    guessed = extract(GREEK.encode("cp1253"), None)

    result = extract(buffer.getvalue(), "windows-1253")

    member = result.children[0].result
    assert member is not None and member.text == guessed.text
    assert result.warnings == [
        "the declared charset 'windows-1253' was not used: application/zip is "
        "not a text format and names its own encodings"
    ]
