from __future__ import annotations

import io
import re
import tarfile
import zipfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from docmill.extract import mime
from docmill.extract.sniff import (
    _HEADER_LINE,
    _MAIL_FIELDS,
    _MAIL_ONLY_FIELDS,
    _looks_like_mail,
    _markdown_lines,
    sniff,
)


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


THUNDERBIRD_HEADERS = (
    b"x-store-info:J++/JTCzmObr++wNraA4\r\n"
    b"Authentication-Results: example.com; sender-id=pass\r\n"
    b"Received: from mailout.example.com\r\n"
    b"Date: Wed, 21 Nov 2012 21:11:32 +0100\r\n"
    b'From: "Vladimir L." <vladimir@example.com>\r\n'
    b"Subject: JUnit test message\r\n"
    b"\r\n"
    b"Dear Vladimir\r\n"
)


@pytest.mark.parametrize(
    ("data", "name", "expected"),
    [
        pytest.param(b"", None, "application/x-empty", id="empty"),
        pytest.param(b"%PDF-1.7\n", None, mime.PDF, id="pdf"),
        pytest.param(b"{\\rtf1\\ansi hello}", None, mime.RTF, id="rtf"),
        pytest.param(b"<!DOCTYPE html><p>hi</p>", None, mime.HTML, id="html"),
        pytest.param(b'<?xml version="1.0"?><a>x</a>', None, mime.XML, id="xml"),
        pytest.param(
            b'<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"/>',
            None,
            mime.HTML,
            id="xhtml",
        ),
        pytest.param(b'{"a": [1, 2]}', None, mime.JSON, id="json"),
        pytest.param(b'{"name": "John Doe",', None, mime.TEXT, id="broken-json"),
        pytest.param(THUNDERBIRD_HEADERS, None, mime.EMAIL, id="mail-store-header"),
        pytest.param(b"a,b,c\n1,2,3\n4,5,6\n", None, mime.CSV, id="csv"),
        pytest.param(
            b"I went to the shop, and bought some milk.\n"
            b"Then I came home, and made a cup of tea.\n"
            b"It was a quiet day, all things considered.\n",
            None,
            mime.TEXT,
            id="prose-one-comma-a-line",
        ),
        pytest.param(
            b"He came late; nobody minded.\nShe left early; we all noticed.\n",
            None,
            mime.TEXT,
            id="prose-one-semicolon-a-line",
        ),
        pytest.param(
            b"name,comment\nJohn,Great product.\nMary,Too expensive!\n",
            None,
            mime.CSV,
            id="csv-of-sentences",
        ),
        pytest.param(
            b"Full Name, Job Title\nJohn Smith, Senior Engineer\nMary Jones, CFO\n",
            None,
            mime.CSV,
            id="csv-two-word-fields",
        ),
        pytest.param(
            b"author,quote\n"
            b"Albert Einstein,Imagination is more important than knowledge.\n"
            b"Mark Twain,The secret of getting ahead is getting started.\n"
            b"Oscar Wilde,Be yourself because everyone else is taken.\n",
            None,
            mime.CSV,
            id="csv-of-quotes",
        ),
        pytest.param(
            b"I am happy.,Je suis heureux.\n"
            b"The cat sleeps.,Le chat dort.\n"
            b"Good morning everyone.,Bonjour tout le monde.\n",
            None,
            mime.CSV,
            id="csv-of-sentence-pairs",
        ),
        pytest.param(
            b"How do I reset my password?;Click the link on the login page.\n"
            b"Can I change my email?;Yes in your account settings.\n",
            None,
            mime.CSV,
            id="semicolon-csv-of-questions",
        ),
        pytest.param(b"# Title\n\n- one\n- two\n", None, mime.MARKDOWN, id="markdown"),
        pytest.param(b"just words\n", "notes.md", mime.MARKDOWN, id="md-name"),
        pytest.param(b"1. one\n2. two\n", None, mime.MARKDOWN, id="md-numbered"),
        pytest.param(b"intro\n> quote\n```\n", None, mime.MARKDOWN, id="md-not-first"),
        pytest.param(b"a # b\n- c\n", None, mime.TEXT, id="md-one-marker"),
        pytest.param(b"#nospace\n-nospace\n", None, mime.TEXT, id="md-no-space"),
        pytest.param(b"- a\r- b\r", None, mime.TEXT, id="md-cr-is-no-line-start"),
        pytest.param(b"x\n\nReceived: y\n", None, mime.TEXT, id="mail-blank-first"),
        pytest.param(b" From: a\nReceived: b\n", None, mime.TEXT, id="mail-indented"),
        pytest.param(b"This is not a zip file!", "x.odt", mime.TEXT, id="fake-odt"),
        pytest.param(bytes(range(256)) * 4, None, "application/octet-stream", id="bin"),
        pytest.param(
            b"A plain note.\x00 The NUL is damage.\n", None, mime.TEXT, id="stray-nul"
        ),
        pytest.param(bytes(100), None, "application/octet-stream", id="nuls"),
        pytest.param(b"\x00\n", None, "application/octet-stream", id="nul-alone"),
    ],
)
def test_sniff_judges_the_format_from_the_bytes(
    data: bytes, name: str | None, expected: str
) -> None:
    assert sniff(data, name) == expected


def test_a_yaml_file_with_date_and_title_keys_is_not_mail() -> None:
    assert sniff(b"title: Minutes\ndate: 2024-01-01\nsubject: budget\n") == mime.TEXT


def test_a_tar_archive_of_text_is_not_text() -> None:
    # Its headers are valid UTF-8, NUL-padded.
    buffer = io.BytesIO()
    body = b"hello\n" * 10
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        member = tarfile.TarInfo("notes.txt")
        member.size = len(body)
        archive.addfile(member, io.BytesIO(body))
    assert sniff(buffer.getvalue()) == "application/octet-stream"


def _cpio_newc(members: dict[str, bytes]) -> bytes:
    def padded(data: bytes) -> bytes:
        return data + b"\x00" * (-len(data) % 4)

    archive = b""
    for number, (name, body) in enumerate({**members, "TRAILER!!!": b""}.items()):
        encoded = name.encode() + b"\x00"
        # magic, then 13 hex fields: inode, mode, uid, gid, links, mtime,
        # size, device major/minor, rdev major/minor, name size, checksum.
        fields = [number + 1, 0o100644, 0, 0, 1, 0, len(body), 0, 0, 0, 0]
        fields += [len(encoded), 0]
        header = b"070701" + b"".join(b"%08X" % field for field in fields)
        archive += padded(header + encoded) + padded(body)
    return archive


def test_a_cpio_archive_of_text_is_not_text() -> None:
    # Valid UTF-8 with a few NULs a member: fewer control bytes than a
    # hundredth, so only its magic tells it from text with stray NULs.
    body = b"a line of notes, long enough to be prose\n" * 10
    data = _cpio_newc({f"notes-{n}.txt": body for n in range(20)})
    assert data.count(b"\x00") < len(data) / 100
    assert sniff(data) == "application/octet-stream"


def test_utf16_text_without_a_mark_is_text() -> None:
    assert sniff("plain words, nothing else\n".encode("utf-16-le")) == mime.TEXT


def test_a_zip_named_docx_without_office_parts_stays_a_zip() -> None:
    assert sniff(_zip({"notes.txt": b"hi"}), "report.docx") == mime.ZIP


def test_a_zip_with_a_word_main_part_is_docx_whatever_its_name() -> None:
    data = _zip({"word/document.xml": b"<w:document/>"})
    assert sniff(data, "archive.zip") == mime.DOCX


def test_a_pdf_named_txt_is_a_pdf() -> None:
    assert sniff(b"%PDF-1.4\n%binary", "notes.txt") == mime.PDF


# The definitions the sniffer had before its shortcuts, kept to hold the
# shortcuts to the same answers.
_LINE_START_MARKER = re.compile(r"^(?:#{1,6} |[-*+] |\d+\. |```|> )", re.MULTILINE)


def _mail_by_every_line(text: str) -> bool:
    fields: set[str] = set()
    for index, line in enumerate(text.splitlines()[:200]):
        if not line.strip():
            break
        if line[:1] in (" ", "\t") and index > 0:
            continue
        if not _HEADER_LINE.match(line):
            return False
        fields.add(line.split(":", 1)[0].lower())
    known = fields & _MAIL_FIELDS
    return len(known) >= 2 and bool(known & _MAIL_ONLY_FIELDS)


@settings(max_examples=500, deadline=None)
@given(text=st.text(alphabet="#-*+>`. 1\u0663a\n\r\x85\u2028", max_size=60))
def test_markdown_markers_are_counted_at_every_line_start(text: str) -> None:
    assert len(_LINE_START_MARKER.findall(text)) == _markdown_lines(text)


@settings(max_examples=500, deadline=None)
@given(
    text=st.lists(
        st.sampled_from(
            [
                "From: a",
                "Received: b",
                "Subject: c",
                " folded",
                "\tx",
                "",
                " ",
                "prose",
                "x-y:z",
                "a b: c",
                "\r",
                "\x0c",
                "\x85",
                "Date: d",
            ]
        ),
        max_size=8,
    ).map("\n".join)
)
def test_the_mail_check_answers_as_a_check_of_every_line(text: str) -> None:
    assert _mail_by_every_line(text) == _looks_like_mail(text)
