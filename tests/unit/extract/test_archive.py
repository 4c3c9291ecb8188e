from __future__ import annotations

import io
import struct
import zipfile

import pytest

from docmill.exceptions import CorruptDocument, EmptyDocument, LimitExceeded
from docmill.extract import archive as archive_module
from docmill.extract import mime
from docmill.extract.archive import extract_zip
from docmill.extract.base import ExtractContext, ExtractionResult, Limits
from tests.support import zip_of


def _extract(
    data: bytes, limits: Limits | None = None, name: str | None = "bundle.zip"
) -> ExtractionResult:
    ctx = ExtractContext(limits)
    ctx.media_type, ctx.name = mime.ZIP, name
    return extract_zip(data, ctx)


def test_each_member_is_a_section_of_the_text() -> None:
    data = zip_of({"a.txt": b"alpha\n", "dir/": b"", "dir/b.csv": b"x,y\n1,2\n"})
    assert _extract(data).text == "== a.txt ==\nalpha\n\n== dir/b.csv ==\nx,y\n1,2"


def test_nested_archives_are_read_to_the_depth_limit() -> None:
    inner = zip_of({"deep.txt": b"deep"})
    data = zip_of({"inner.zip": zip_of({"middle.zip": inner})})
    result = _extract(data, Limits(max_archive_depth=2))
    middle = result.children[0].result.children[0].result  # type: ignore[union-attr]
    assert middle is not None
    assert middle.children[0].error_message == (
        "not read: nesting depth 3 exceeds the limit of 2"
    )


def test_too_many_members_is_a_limit() -> None:
    data = zip_of({f"{index}.txt": b"x" for index in range(4)})
    with pytest.raises(LimitExceeded):
        _extract(data, Limits(max_archive_members=3))


def test_unpacked_bytes_are_counted_while_reading() -> None:
    data = zip_of({"big.txt": b"a" * 10_000})
    with pytest.raises(LimitExceeded):
        _extract(data, Limits(max_unpacked_bytes=5_000))


def test_unpacked_bytes_are_one_budget_across_nested_archives() -> None:
    """Each inner archive fits the limit alone; together they pass it."""
    inner = zip_of({f"{n}.txt": b"a" * 1_000 for n in range(3)})
    data = zip_of({f"inner{n}.zip": inner for n in range(4)})

    # Two inner archives whole, the third and the first member in it.
    limit = 2 * (len(inner) + 3_000) + len(inner) + 1_500

    with pytest.raises(LimitExceeded) as caught:
        _extract(data, Limits(max_unpacked_bytes=limit))

    assert caught.value.message == (
        f"unpacking '1.txt' passes the limit of {limit} unpacked bytes for one "
        "document, the archives nested in it included"
    )


def test_nested_archives_within_the_budget_are_read_whole() -> None:
    inner = zip_of({f"{n}.txt": b"a" * 1_000 for n in range(3)})
    data = zip_of({f"inner{n}.zip": inner for n in range(2)})

    result = _extract(data, Limits(max_unpacked_bytes=2 * (3_000 + len(inner))))

    assert [child.error_code for child in result.children] == [None, None]


def _lying_zip() -> bytes:
    """A stored member whose headers declare 2 GB but hold 11 bytes."""
    data = bytearray(zip_of({"hello.txt": b"Hello World"}, zipfile.ZIP_STORED))
    declared = struct.pack("<I", 0x7FFFFFFE)
    data[18:22] = declared  # local header: compressed size
    data[22:26] = declared  # local header: uncompressed size
    central = data.index(b"PK\x01\x02")
    data[central + 20 : central + 24] = declared
    data[central + 24 : central + 28] = declared
    return bytes(data)


def test_a_member_whose_declared_size_lies_fails_as_corrupt() -> None:
    with pytest.raises(CorruptDocument):
        _extract(_lying_zip())


def test_a_member_that_copies_its_archive_is_not_opened_again() -> None:
    """A real quine needs a crafted deflate stream; a member equal to the bytes
    handed in as the archive's own is the case the check looks for."""
    member = zip_of({"a.txt": b"x"})
    holder = zipfile.ZipFile(
        io.BytesIO(zip_of({"self.zip": member}, zipfile.ZIP_STORED))
    )
    ctx = ExtractContext()
    children = archive_module._read_members(holder, holder.infolist(), member, ctx)
    assert children[0].error_code == "limit_exceeded"


def test_a_truncated_archive_is_corrupt() -> None:
    with pytest.raises(CorruptDocument):
        _extract(zip_of({"a.txt": b"alpha"})[:-30])


def test_a_plain_zip_named_as_a_workbook_is_corrupt() -> None:
    with pytest.raises(CorruptDocument, match="named as an Excel workbook"):
        _extract(zip_of({"null_file.xlsx": b""}), name="report.xlsx")


def test_an_archive_of_directories_only_is_empty() -> None:
    with pytest.raises(EmptyDocument):
        _extract(zip_of({"dir/": b""}))


def _word_file(words: int) -> bytes:
    import docx

    document = docx.Document()
    document.add_paragraph("lorem ipsum " * words)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _spent(data: bytes, limits: Limits) -> int:
    ctx = ExtractContext(limits)
    ctx.media_type, ctx.name = mime.ZIP, "bundle.zip"
    extract_zip(data, ctx)
    return ctx.unpacked.limit - ctx.unpacked.left


def test_office_files_in_an_archive_share_its_unpacking_budget() -> None:
    """
    A zip of office files, each of which fits the limit alone: their parts
    count against the one budget of the zip, as nested archives do. Each
    package had a fresh ``max_unpacked_bytes`` of its own before, so a zip
    of a hundred compressed Word files unpacked the limit a hundred times.
    """
    word = _word_file(20_000)  # document.xml ~240 KB, compressed to a few
    one = _spent(zip_of({"0.docx": word}), Limits())
    assert one > 10 * len(word)  # the parts, not only the file, are counted

    data = zip_of({f"{n}.docx": word for n in range(4)})
    shared = _extract(data, Limits(max_unpacked_bytes=int(2.5 * one)))
    # The third finds its largest part bigger than what is left, before
    # inflating it; so does the fourth.
    assert [child.error_code for child in shared.children] == [
        None,
        None,
        "limit_exceeded",
        "limit_exceeded",
    ]
    assert "for one document, the files nested in it included" in str(
        shared.children[2].error_message
    )

    whole = _extract(data, Limits(max_unpacked_bytes=4 * one + 1_000))
    assert [child.error_code for child in whole.children] == [None] * 4


def test_an_office_file_past_the_budget_spends_it_for_its_siblings() -> None:
    """
    A package part that inflates past what is left fails the document, not
    only itself: recorded on the child, the next sibling could unpack the
    same amount again. One whose declared size is too large unpacks nothing
    and fails alone.
    """
    word = _word_file(20_000)
    one = _spent(zip_of({"0.docx": word}), Limits())
    lying = bytearray(word)
    entry = bytes(lying).index(b"PK\x01\x02")
    while not bytes(lying[entry + 46 :]).startswith(b"word/document.xml"):
        entry = bytes(lying).index(b"PK\x01\x02", entry + 4)
    struct.pack_into("<I", lying, entry + 24, 10)  # declared: 10 bytes

    # Room for every part but most of document.xml (~240 KB), which says it
    # is 10 bytes long and is found out while it inflates.
    with pytest.raises(LimitExceeded, match=r"'word/document\.xml'"):
        _extract(
            zip_of({"a.docx": bytes(lying), "b.docx": word}),
            Limits(max_unpacked_bytes=one - 100_000),
        )

    declared_too_big = _extract(
        zip_of({"big.docx": word, "small.txt": b"small"}),
        Limits(max_unpacked_bytes=one // 2),
    )
    assert [child.error_code for child in declared_too_big.children] == [
        "limit_exceeded",
        None,
    ]
