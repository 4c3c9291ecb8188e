"""
Reading zip archives with less Python per entry and per member than
``zipfile`` spends, for the small packages office documents are.

Kept apart from ``ooxml`` so that sniffing a zip imports no XML parser.
"""

from __future__ import annotations

import io
import os
import struct
import zipfile
import zlib
from typing import IO

# A deflate stream codes a 258-byte match in as little as two bits, and no
# output comes cheaper: the most it can expand is 1032 to 1.
DEFLATE_MAX_RATIO = 1032
_LOCAL_HEADER = struct.Struct("<4s22xHH")
_LOCAL_MAGIC = b"PK\x03\x04"
# General-purpose flags that change nothing for reading: deflate options,
# a data descriptor after the data, UTF-8 names.
_PLAIN_FLAGS = 0x0002 | 0x0004 | 0x0008 | 0x0800
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")
_CENTRAL_MAGIC = b"PK\x01\x02"
_UTF8_NAME = 0x800
_EXTRA_HEADER = struct.Struct("<HH")
# Zip64 sizes and offsets; Info-ZIP Unicode path.
_ACTIVE_EXTRAS = frozenset({0x0001, 0x7075})
# The separator ZipInfo turns into "/" in a name, where it is not "/".
_OTHER_SEP = "" if os.sep == "/" else os.sep


class ZipArchive(zipfile.ZipFile):
    """
    ``zipfile.ZipFile`` reading its central directory in one plainer loop,
    and making each member's ``ZipInfo`` only when it is asked for.

    ``ZipFile`` reads each entry through a stream object, builds its
    ``ZipInfo`` through the constructor and decodes its extra fields: 70 µs
    for a deck of a hundred parts, a tenth of reading a small one. This
    loop checks the directory's entries and indexes their names; the same
    ``ZipInfo`` objects are built from the directory's bytes when a member
    is looked up (``getinfo``, ``open``, ``read``), and all of them the
    first time ``filelist``, ``infolist`` or ``NameToInfo`` is used. A
    document reads a third of its members or fewer, and building the rest
    took two thirds of opening a small deck. Only what office packages hold
    takes this loop: one disk, no archive prefix, no Zip64, and extra fields
    only of kinds ``ZipFile`` keeps as they are (a zip tool's timestamps,
    say). Anything else, and every error, is left to ``ZipFile``'s own loop,
    which reads the directory again from the start.
    """

    # Set before ZipFile.__init__ assigns the two below.
    _pending: list[tuple[str, int, tuple[int, ...]]] | None = None
    _directory = b""

    @classmethod
    def owning(cls, stream: IO[bytes]) -> ZipArchive:
        """An archive over an open ``stream`` that closes it when closed."""
        archive = cls(stream)
        # ZipFile leaves a file object it was given open; this one is handed
        # over (the sniffer's, with the document's head read from it).
        archive._filePassed = 0  # type: ignore[attr-defined]
        return archive

    @property
    def filelist(self) -> list[zipfile.ZipInfo]:
        if self._pending is not None:
            self._build_all()
        return self._filelist

    @filelist.setter
    def filelist(self, value: list[zipfile.ZipInfo]) -> None:
        self._filelist = value

    @property
    def NameToInfo(self) -> dict[str, zipfile.ZipInfo]:
        if self._pending is not None:
            self._build_all()
        return self._name_to_info

    @NameToInfo.setter
    def NameToInfo(self, value: dict[str, zipfile.ZipInfo]) -> None:
        self._name_to_info = value

    def namelist(self) -> list[str]:
        if self._pending is None:
            return super().namelist()
        return [name for name, _, _ in self._pending]

    def has(self, name: str) -> bool:
        """Whether the archive holds a member named ``name``."""
        if self._pending is None:
            return name in self._name_to_info
        return name in self._index

    def getinfo(self, name: str) -> zipfile.ZipInfo:
        if self._pending is None:
            return super().getinfo(name)
        index = self._index.get(name)
        if index is None:
            raise KeyError(f"There is no item named {name!r} in the archive")
        return self._info_at(index)

    def _info_at(self, index: int) -> zipfile.ZipInfo:
        info = self._built.get(index)
        if info is None:
            info = self._built[index] = self._build(*self._pending[index])  # type: ignore[index]
        return info

    def _build_all(self) -> None:
        infos = [self._info_at(index) for index in range(len(self._pending or ()))]
        self._pending = None
        self._filelist = infos
        self._name_to_info = {info.filename: info for info in infos}

    def _RealGetContents(self) -> None:
        try:
            plain = self._read_plain_directory()
        except (AttributeError, TypeError, IndexError):
            # zipfile's private helpers this relies on changed shape in a
            # newer Python (checked on 3.11 to 3.13): its own loop still works.
            plain = False
        if not plain:
            self._pending = None
            self.filelist = []
            self.NameToInfo = {}
            super()._RealGetContents()  # type: ignore[misc]

    def _read_plain_directory(self) -> bool:
        stream = self.fp
        if stream is None:
            return False
        try:
            end = zipfile._EndRecData(stream)  # type: ignore[attr-defined]
        except OSError:
            return False
        if not end or end[0] != zipfile.stringEndArchive:  # type: ignore[attr-defined]
            return False
        size, offset = end[zipfile._ECD_SIZE], end[zipfile._ECD_OFFSET]  # type: ignore[attr-defined]
        # "concat": bytes ahead of the archive (a self-extractor's stub).
        if end[zipfile._ECD_LOCATION] - size - offset != 0:  # type: ignore[attr-defined]
            return False
        self._comment = end[zipfile._ECD_COMMENT]  # type: ignore[attr-defined]
        self.start_dir = offset
        stream.seek(offset)
        data = stream.read(size)
        if len(data) != size:
            return False
        unpack = _CENTRAL.unpack_from
        position = 0
        entries: list[tuple[str, int, tuple[int, ...]]] = []
        index: dict[str, int] = {}
        while position < size:
            if position + _CENTRAL.size > size:
                return False
            fields = unpack(data, position)
            if (
                fields[0] != _CENTRAL_MAGIC
                or fields[3] > zipfile.MAX_EXTRACT_VERSION  # extract_version
            ):
                return False
            start = position + _CENTRAL.size
            name_end = start + fields[12]
            comment_start = name_end + fields[13]
            entry_start = position
            position = comment_start + fields[14]
            if position > size:
                return False
            if fields[13] and not _inert_extra(data[name_end:comment_start]):
                return False
            raw_name = data[start:name_end]
            try:
                # Every encoding a name can be in agrees on ASCII, and the
                # ASCII codec is in C where cp437's is a Python call.
                name = raw_name.decode(
                    "ascii"
                    if raw_name.isascii()
                    else "utf-8"
                    if fields[5] & _UTF8_NAME  # flag_bits
                    else (self.metadata_encoding or "cp437")  # type: ignore[attr-defined]
                )
            except UnicodeDecodeError:
                return False
            if "\x00" in name or (_OTHER_SEP and _OTHER_SEP in name):
                # ZipInfo cuts a name at NUL (and makes os.sep "/"): the
                # member goes by another name than the one indexed here.
                return False
            # A name given twice: the last entry wins, as in NameToInfo.
            index[name] = len(entries)
            entries.append((name, entry_start, fields))
        self._directory = data
        self._index = index
        self._built: dict[int, zipfile.ZipInfo] = {}
        self._pending = entries
        return True

    def _build(
        self, name: str, entry_start: int, fields: tuple[int, ...]
    ) -> zipfile.ZipInfo:
        (
            _magic,
            create_version,
            create_system,
            extract_version,
            reserved,
            flag_bits,
            compress_type,
            time,
            date,
            crc,
            compress_size,
            file_size,
            name_length,
            extra_length,
            comment_length,
            volume,
            internal_attr,
            external_attr,
            header_offset,
        ) = fields
        extra_start = entry_start + _CENTRAL.size + name_length
        comment_start = extra_start + extra_length
        data = self._directory
        # The constructor sets whatever fields this Python's ZipInfo has.
        info = zipfile.ZipInfo(
            name,
            (
                (date >> 9) + 1980,
                (date >> 5) & 0xF,
                date & 0x1F,
                time >> 11,
                (time >> 5) & 0x3F,
                (time & 0x1F) * 2,
            ),
        )
        info._raw_time = time  # type: ignore[attr-defined]
        info.compress_type = compress_type
        info.comment = data[comment_start : comment_start + comment_length]
        info.extra = data[extra_start:comment_start]
        info.create_system = create_system
        info.create_version = create_version
        info.extract_version = extract_version
        info.reserved = reserved
        info.flag_bits = flag_bits
        info.volume = volume
        info.internal_attr = internal_attr
        info.external_attr = external_attr
        info.header_offset = header_offset
        info.CRC = crc
        info.compress_size = compress_size
        info.file_size = file_size
        return info


def _inert_extra(extra: bytes) -> bool:
    """
    Whether ``ZipFile`` would keep an entry's extra field as it is: whole
    fields only, none of them Zip64 (which changes sizes and offsets) or an
    Info-ZIP Unicode path (which a newer Python may read as the name).
    Timestamps and Unix owners, which zip tools add, are inert.
    """
    position = 0
    while position < len(extra):
        if position + 4 > len(extra):
            return False
        kind, length = _EXTRA_HEADER.unpack_from(extra, position)
        if kind in _ACTIVE_EXTRAS:
            return False
        position += 4 + length
    return position == len(extra)


def read_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int
) -> bytes | None:
    """
    A stored or deflated member's bytes, at most ``cap`` of them, or None.

    ``ZipFile.open`` costs tens of microseconds a member in Python (a shared
    file wrapper, a stream object, chunked reads each updating the CRC), and
    a deck of 30 slides reads over a hundred small members. This reads the
    local header and the compressed bytes (one ``pread`` on a file) and
    inflates them in one call, and returns the data only when every check
    zipfile makes passes: the header's signature and name, the length, the
    end of the deflate stream and the CRC. Anything else returns None, and
    zipfile reads the member and reports the fault in its own words.
    """
    stream = archive.fp
    if (
        stream is None
        or info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
        or info.flag_bits & ~_PLAIN_FLAGS
        # More compressed bytes than the cap: zipfile streams them instead,
        # so a lying size never makes this hold the whole member in memory.
        or info.compress_size > cap
    ):
        return None
    name = info.orig_filename
    if name.isascii():
        # cp437 and UTF-8 agree on ASCII; the codec call cost more than
        # the rest of reading a small member.
        encoded = name.encode("ascii")
    else:
        try:
            encoded = name.encode("utf-8" if info.flag_bits & _UTF8_NAME else "cp437")
        except UnicodeEncodeError:
            return None
    raw = _member_bytes(stream, info, encoded)
    if raw is None:
        return None
    if info.compress_type == zipfile.ZIP_STORED:
        data, complete = raw[:cap], True
    else:
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        data = inflater.decompress(raw, cap)
        complete = inflater.eof
    if len(data) >= cap:
        # Past the cap: the caller refuses the member whatever the rest holds.
        return data
    if not complete or len(data) != info.file_size or zlib.crc32(data) != info.CRC:
        return None
    return data


def _member_bytes(
    stream: IO[bytes], info: zipfile.ZipInfo, name: bytes
) -> bytes | None:
    # The compressed bytes behind a local header that names the member. On a
    # file, one pread fetches header, name and data when the header carries
    # no extra field (office writers add none): a seek and three buffered
    # reads cost three times as much for a member of a few kilobytes.
    offset = info.header_offset
    try:
        descriptor = stream.fileno()
    except (OSError, ValueError):
        descriptor = -1
    if descriptor >= 0:
        start = _LOCAL_HEADER.size + len(name)
        block = os.pread(descriptor, start + info.compress_size, offset)
        if len(block) < _LOCAL_HEADER.size:
            return None
        magic, name_length, extra_length = _LOCAL_HEADER.unpack_from(block)
        if magic != _LOCAL_MAGIC or block[_LOCAL_HEADER.size : start] != name:
            return None
        if name_length != len(name):
            return None
        if extra_length:
            raw = os.pread(
                descriptor, info.compress_size, offset + start + extra_length
            )
        else:
            raw = block[start:]
    else:
        stream.seek(offset)
        header = stream.read(_LOCAL_HEADER.size)
        if len(header) != _LOCAL_HEADER.size:
            return None
        magic, name_length, extra_length = _LOCAL_HEADER.unpack(header)
        if magic != _LOCAL_MAGIC or stream.read(name_length) != name:
            return None
        if extra_length:
            stream.seek(extra_length, io.SEEK_CUR)
        raw = stream.read(info.compress_size)
    if len(raw) != info.compress_size:
        return None
    return raw
