from __future__ import annotations

import gc
import io
import struct
import tracemalloc
import zipfile

import pytest

from docmill.exceptions import CorruptDocument, LimitExceeded
from docmill.extract import ooxml
from docmill.extract.base import ExtractContext, Limits
from docmill.extract.ooxml import Package
from tests.support import zip_of

PART = "word/document.xml"
CONTENT = b"<w:document>" + b"words " * 200 + b"</w:document>"


def build(
    compression: int = zipfile.ZIP_DEFLATED, name: str = PART, data: bytes = CONTENT
) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        archive.writestr("[Content_Types].xml", b"<Types/>")
        archive.writestr(name, data)
    return buffer.getvalue()


def read(data: bytes, name: str = PART, limit: int | None = None) -> bytes:
    limits = Limits() if limit is None else Limits(max_unpacked_bytes=limit)
    with Package(data, ExtractContext(limits=limits), "DOCX") as package:
        return package.read(name)


def member_data_offset(data: bytes, name: str = PART) -> int:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        offset = archive.getinfo(name).header_offset
    name_length, extra_length = struct.unpack_from("<HH", data, offset + 26)
    return int(offset + 30 + name_length + extra_length)


@pytest.mark.parametrize(
    "compression",
    [
        pytest.param(zipfile.ZIP_DEFLATED, id="deflated"),
        pytest.param(zipfile.ZIP_STORED, id="stored"),
        pytest.param(zipfile.ZIP_BZIP2, id="bzip2-left-to-zipfile"),
    ],
)
def test_members_read_back_as_written(compression: int) -> None:
    assert read(build(compression)) == CONTENT


def test_non_ascii_member_names_are_found() -> None:
    assert read(build(name="word/dokumént.xml"), "word/dokumént.xml") == CONTENT


@pytest.mark.parametrize(
    "compression",
    [
        pytest.param(zipfile.ZIP_DEFLATED, id="deflated"),
        pytest.param(zipfile.ZIP_STORED, id="stored"),
    ],
)
def test_damaged_member_data_is_corrupt(compression: int) -> None:
    data = bytearray(build(compression))
    start = member_data_offset(bytes(data))
    data[start + 20] ^= 0xFF

    with pytest.raises(CorruptDocument, match="damaged"):
        read(bytes(data))


def test_a_member_whose_declared_size_lies_is_refused_past_the_limit() -> None:
    data = bytearray(build())
    # Declare the member 10 bytes long in the central directory; it inflates
    # to far more, and the limit is counted on what comes out.
    # Its entry is the last in the central directory.
    entry = bytes(data).rindex(b"PK\x01\x02")
    struct.pack_into("<I", data, entry + 24, 10)

    with pytest.raises(LimitExceeded):
        read(bytes(data), limit=100)


def reserve(data: bytes, limit: int) -> None:
    limits = Limits(max_unpacked_bytes=limit)
    with Package(data, ExtractContext(limits=limits), "XLSX") as package:
        package.reserve([PART])


def damaged() -> bytes:
    data = bytearray(build())
    data[member_data_offset(bytes(data)) + 20] ^= 0xFF
    return bytes(data)


def test_reserve_inflates_nothing_when_the_worst_case_fits() -> None:
    # Damaged data would fail an inflate; with room for 1032 times the
    # compressed size, none is needed.
    reserve(damaged(), limit=10_000_000)


def test_reserve_reads_the_member_when_the_worst_case_does_not_fit() -> None:
    with pytest.raises(CorruptDocument, match="damaged"):
        reserve(damaged(), limit=len(CONTENT) + 10)


def test_reserve_refuses_a_lying_size_past_the_limit() -> None:
    data = bytearray(build())
    entry = bytes(data).rindex(b"PK\x01\x02")
    struct.pack_into("<I", data, entry + 24, 10)

    with pytest.raises(LimitExceeded):
        reserve(bytes(data), limit=100)


@pytest.mark.parametrize(
    ("part", "expected"),
    [
        pytest.param("", ("", "_rels/.rels"), id="package"),
        pytest.param(
            "ppt/slides/slide1.xml",
            ("ppt/slides", "ppt/slides/_rels/slide1.xml.rels"),
            id="slide",
        ),
        pytest.param("word/document.xml", ("word", "word/_rels/document.xml.rels")),
    ],
)
def test_a_parts_relationships_sit_in_the_rels_folder_beside_it(
    part: str, expected: tuple[str, str]
) -> None:
    assert ooxml._rels_part(part) == expected


def test_long_relationship_targets_are_not_kept_after_the_document() -> None:
    """
    The resolved names outlive a document (a worker's process reads many):
    a hostile package's long targets must not stay in it for the next ones.
    """
    targets = [f"../media/{n}" + "a" * 100_000 for n in range(10)]
    rels = "".join(
        f'<Relationship Id="r{n}" Type="http://x/image" Target="{target}"/>'
        for n, target in enumerate(targets)
    )
    data = zip_of(
        {
            PART: CONTENT,
            "word/_rels/document.xml.rels": (
                f'<Relationships xmlns="{ooxml.PACKAGE_RELS}">{rels}</Relationships>'
            ).encode(),
        }
    )
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        with Package(data, ExtractContext(limits=Limits()), "DOCX") as package:
            for rel in package.relationships(PART):
                # A slide's own relationships are asked for by its name.
                package.relationships(rel.target)
        del package
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()

    # Kept, the targets, their resolved names and their rels names held 3 MB.
    assert kept < 200_000
