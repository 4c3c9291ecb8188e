"""
OLE2 compound files: legacy Office documents and password-protected OOXML.

Which application wrote the file shows in the names of the streams at the
top of its directory. Only that directory is read here, by a small reader
that follows the sector chains with bounds and cycle checks; the streams'
contents are left to calamine (for ``.xls``) or refused with a sentence
saying what the file is.
"""

from __future__ import annotations

import struct
from typing import IO

from docmill.exceptions import CorruptDocument, EncryptedDocument, UnsupportedFormat
from docmill.extract.base import ExtractContext, ExtractionResult, Source, open_source

SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_END_OF_CHAIN = 0xFFFFFFFE
_FREE = 0xFFFFFFFF
_NO_STREAM = 0xFFFFFFFF
_HEADER_DIFAT = 109
_ENTRY_SIZE = 128
_STORAGE, _STREAM, _ROOT = 1, 2, 5

_LEGACY_FORMATS = {
    "WordDocument": "a Word 97-2003 document (.doc)",
    "PowerPoint Document": "a PowerPoint 97-2003 presentation (.ppt)",
    "VisioDocument": "a Visio drawing (.vsd)",
    "Contents": "a Publisher or Works document",
}


def extract_ole(source: Source, ctx: ExtractContext) -> ExtractionResult:
    with open_source(source) as stream:
        names = root_entry_names(stream)

    if "EncryptedPackage" in names:
        raise EncryptedDocument(
            "the document is an Office file encrypted with a password; "
            "submit it unprotected"
        )
    if "Workbook" in names or "Book" in names:
        from docmill.extract.spreadsheet import extract_spreadsheet

        return extract_spreadsheet(source, ctx)
    if any(name.startswith("__substg1.0_") for name in names):
        raise UnsupportedFormat(
            "an Outlook message (.msg) is not a format docmill reads"
        )
    for stream_name, described in _LEGACY_FORMATS.items():
        if stream_name in names:
            raise UnsupportedFormat(
                f"{described} is not a format docmill reads; save it in the "
                "current Office format"
            )
    listed = ", ".join(repr(name) for name in sorted(names)[:5]) or "none"
    raise UnsupportedFormat(
        f"an OLE compound file of an unknown kind (top-level streams: {listed})"
    )


def root_entry_names(stream: IO[bytes]) -> set[str]:
    """
    Return the names of the streams and storages directly under the root.

    Raises ``CorruptDocument`` when the header or directory is unreadable.
    """
    try:
        return _Directory(stream).root_names()
    except (struct.error, ValueError, OSError) as exc:
        message = f"the OLE compound file's directory is damaged ({exc})"
        raise CorruptDocument(message) from exc


class _Directory:
    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        header = stream.read(512)
        if len(header) < 512 or not header.startswith(SIGNATURE):
            raise CorruptDocument("the OLE compound file's header is truncated")
        sector_shift = struct.unpack_from("<H", header, 0x1E)[0]
        if sector_shift not in (9, 12):
            raise CorruptDocument(f"the OLE sector size 2**{sector_shift} is invalid")
        self.sector_size = 1 << sector_shift
        stream.seek(0, 2)
        # No chain can be longer than the file has sectors; that bound also
        # stops a chain that loops back on itself.
        self.max_sectors = stream.tell() // self.sector_size
        fat_count, self.first_directory = struct.unpack_from("<II", header, 0x2C)
        first_difat, difat_count = struct.unpack_from("<II", header, 0x44)
        self.fat = self._read_fat(header, fat_count, first_difat, difat_count)

    def _sector(self, number: int) -> bytes:
        if number >= self.max_sectors:
            raise ValueError(f"sector {number} lies past the end of the file")
        self.stream.seek((number + 1) * self.sector_size)
        data = self.stream.read(self.sector_size)
        if len(data) < self.sector_size:
            raise ValueError(f"sector {number} is cut short")
        return data

    def _read_fat(
        self, header: bytes, fat_count: int, first_difat: int, difat_count: int
    ) -> list[int]:
        if fat_count > self.max_sectors or difat_count > self.max_sectors:
            raise ValueError("the header claims more sectors than the file holds")
        locations = list(struct.unpack_from(f"<{_HEADER_DIFAT}I", header, 0x4C))
        per_sector = self.sector_size // 4
        sector = first_difat
        for _ in range(difat_count):
            if sector in (_END_OF_CHAIN, _FREE):
                break
            entries = struct.unpack(f"<{per_sector}I", self._sector(sector))
            locations.extend(entries[:-1])
            sector = entries[-1]
        fat: list[int] = []
        for location in locations[:fat_count]:
            fat.extend(struct.unpack(f"<{per_sector}I", self._sector(location)))
        return fat

    def _chain(self, start: int) -> list[int]:
        chain: list[int] = []
        sector = start
        while sector != _END_OF_CHAIN:
            if len(chain) >= self.max_sectors or sector >= len(self.fat):
                raise ValueError("a sector chain loops or leaves the file")
            chain.append(sector)
            sector = self.fat[sector]
        return chain

    def root_names(self) -> set[str]:
        directory = b"".join(self._sector(s) for s in self._chain(self.first_directory))
        count = len(directory) // _ENTRY_SIZE
        if count == 0:
            raise ValueError("the directory is empty")

        def entry(index: int) -> tuple[str, int, int, int, int]:
            raw = directory[index * _ENTRY_SIZE : (index + 1) * _ENTRY_SIZE]
            length, kind = struct.unpack_from("<HB", raw, 0x40)
            left, right, child = struct.unpack_from("<III", raw, 0x44)
            name = raw[: max(0, min(length, 64) - 2)].decode("utf-16-le", "replace")
            return name, kind, left, right, child

        _name, kind, _left, _right, first_child = entry(0)
        if kind != _ROOT:
            raise ValueError("the first directory entry is not the root")
        # The root's children form a red-black tree linked by left and right
        # siblings; their own children (embedded objects) are not visited.
        names: set[str] = set()
        pending, seen = [first_child], set()
        while pending:
            index = pending.pop()
            if index == _NO_STREAM or index in seen or index >= count:
                continue
            seen.add(index)
            name, kind, left, right, _child = entry(index)
            if kind in (_STORAGE, _STREAM):
                names.add(name)
            pending.extend((left, right))
        return names
