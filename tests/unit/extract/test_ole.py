from __future__ import annotations

import struct

import pytest

from docmill.exceptions import CorruptDocument, EncryptedDocument, UnsupportedFormat
from docmill.extract import spreadsheet
from docmill.extract.base import ExtractContext, ExtractionResult, Source
from docmill.extract.ole import SIGNATURE, extract_ole

FREE = 0xFFFFFFFF
END_OF_CHAIN = 0xFFFFFFFE
FAT_SECTOR = 0xFFFFFFFD
NO_STREAM = 0xFFFFFFFF


def directory_entry(
    name: str,
    kind: int,
    left: int = NO_STREAM,
    right: int = NO_STREAM,
    child: int = NO_STREAM,
) -> bytes:
    encoded = (name + "\0").encode("utf-16-le")
    entry = bytearray(128)
    entry[: len(encoded)] = encoded
    struct.pack_into("<HBB", entry, 0x40, len(encoded), kind, 1)
    struct.pack_into("<III", entry, 0x44, left, right, child)
    return bytes(entry)


def build_ole(names: list[str], embedded: str | None = None) -> bytes:
    """
    Write a compound file whose root holds empty streams named ``names``.

    ``embedded`` adds a storage holding a stream of that name, as an embedded
    object would.
    """
    entries = [directory_entry("Root Entry", 5, child=1)]
    for index, name in enumerate(names, start=1):
        right = index + 1 if index < len(names) else NO_STREAM
        entries.append(directory_entry(name, 2, right=right))
    if embedded is not None:
        storage = len(entries)
        entries[-1] = (
            entries[-1][:0x48] + struct.pack("<I", storage) + entries[-1][0x4C:]
        )
        entries.append(directory_entry("ObjectPool", 1, child=storage + 1))
        entries.append(directory_entry(embedded, 2))
    while len(entries) % 4:
        entries.append(bytes(128))
    directory_sectors = len(entries) // 4

    fat = [FAT_SECTOR]
    fat.extend(range(2, directory_sectors + 1))
    fat.append(END_OF_CHAIN)
    fat.extend([FREE] * (128 - len(fat)))

    header = bytearray(512)
    header[:8] = SIGNATURE
    struct.pack_into("<HHHH", header, 0x18, 0x3E, 3, 0xFFFE, 9)
    struct.pack_into("<H", header, 0x20, 6)
    struct.pack_into("<II", header, 0x2C, 1, 1)
    struct.pack_into("<III", header, 0x38, 4096, END_OF_CHAIN, 0)
    struct.pack_into("<II", header, 0x44, END_OF_CHAIN, 0)
    struct.pack_into("<109I", header, 0x4C, 0, *([FREE] * 108))
    return bytes(header) + struct.pack("<128I", *fat) + b"".join(entries)


def test_encrypted_package_is_refused_as_encrypted() -> None:
    data = build_ole(["EncryptionInfo", "EncryptedPackage"])

    with pytest.raises(EncryptedDocument, match="encrypted with a password"):
        extract_ole(data, ExtractContext())


def test_legacy_word_document_is_named_as_unsupported() -> None:
    with pytest.raises(UnsupportedFormat, match=r"Word 97-2003 document \(\.doc\)"):
        extract_ole(build_ole(["WordDocument", "1Table"]), ExtractContext())


def test_legacy_powerpoint_is_named_as_unsupported() -> None:
    with pytest.raises(UnsupportedFormat, match=r"\(\.ppt\)"):
        extract_ole(build_ole(["PowerPoint Document"]), ExtractContext())


def test_workbook_stream_is_read_as_a_spreadsheet(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    read = ExtractionResult("application/vnd.ms-excel", "cells")

    def fake_spreadsheet(source: Source, ctx: ExtractContext) -> ExtractionResult:
        return read

    monkeypatch.setattr(spreadsheet, "extract_spreadsheet", fake_spreadsheet)

    assert extract_ole(build_ole(["Workbook"]), ExtractContext()) is read


def test_workbook_embedded_in_a_word_file_does_not_make_it_a_workbook() -> None:
    data = build_ole(["WordDocument"], embedded="Workbook")

    with pytest.raises(UnsupportedFormat, match="Word"):
        extract_ole(data, ExtractContext())


def test_truncated_compound_file_is_corrupt() -> None:
    with pytest.raises(CorruptDocument):
        extract_ole(build_ole(["WordDocument"])[:700], ExtractContext())


def test_directory_chain_that_loops_is_corrupt() -> None:
    data = bytearray(build_ole(["WordDocument"]))
    # Point the directory sector's FAT entry back at itself.
    struct.pack_into("<I", data, 512 + 4, 1)

    with pytest.raises(CorruptDocument):
        extract_ole(bytes(data), ExtractContext())
