from __future__ import annotations

import io
import types
import zipfile
from pathlib import Path

import pytest

from docmill.extract.zipread import ZipArchive, read_member

# An extended timestamp, as zip tools add; a Zip64 field that changes no
# size; an Info-ZIP Unicode path.
_TIMESTAMP = b"\x55\x54\x05\x00\x01\x00\x00\x00\x00"
_ZIP64 = b"\x01\x00\x08\x00" + bytes(8)
_UNICODE_PATH = b"\x75\x70\x06\x00\x01" + bytes(4) + b"x"


def archive_bytes(*, extra: bytes = b"", comment: bytes = b"") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", b"<Types/>" * 10)
        info = zipfile.ZipInfo("word/document.xml", (2024, 2, 29, 13, 45, 58))
        info.extra = extra
        info.comment = comment
        archive.writestr(info, "<w:document/>", zipfile.ZIP_STORED)
        archive.writestr("caf\u00e9.txt", "utf-8 name")
    return buffer.getvalue()


def fields(info: zipfile.ZipInfo) -> dict[str, object]:
    return {name: getattr(info, name, None) for name in zipfile.ZipInfo.__slots__}


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(archive_bytes(), id="plain"),
        pytest.param(archive_bytes(comment=b"a note"), id="entry-comment"),
        pytest.param(archive_bytes(extra=_TIMESTAMP), id="extra"),
        # Zip64 and Unicode-path extra fields, a cut extra field and bytes
        # ahead of the archive take zipfile's own loop.
        pytest.param(archive_bytes(extra=_ZIP64), id="zip64-extra"),
        pytest.param(archive_bytes(extra=_UNICODE_PATH), id="unicode-path-extra"),
        pytest.param(archive_bytes(extra=_TIMESTAMP[:3]), id="cut-extra"),
        pytest.param(b"#!stub\n" + archive_bytes(), id="prefixed"),
    ],
)
def test_the_directory_reads_as_zipfile_reads_it(data: bytes) -> None:
    fast = ZipArchive(io.BytesIO(data))
    plain = zipfile.ZipFile(io.BytesIO(data))

    assert fast.namelist() == plain.namelist()
    assert [fields(info) for info in fast.infolist()] == [
        fields(info) for info in plain.infolist()
    ]
    assert [fast.read(name) for name in fast.namelist()] == [
        plain.read(name) for name in plain.namelist()
    ]


@pytest.mark.parametrize(
    ("extra", "plain"),
    [
        pytest.param(_TIMESTAMP, True, id="timestamp"),
        pytest.param(_TIMESTAMP + _TIMESTAMP, True, id="two-fields"),
        pytest.param(_TIMESTAMP + _ZIP64, False, id="zip64"),
        pytest.param(_UNICODE_PATH, False, id="unicode-path"),
    ],
)
def test_only_extra_fields_zipfile_keeps_as_they_are_take_the_plain_loop(
    extra: bytes, plain: bool
) -> None:
    archive = ZipArchive(io.BytesIO(archive_bytes(extra=extra)))

    assert archive._read_plain_directory() is plain


def test_an_extra_field_longer_than_its_entry_fails_as_in_zipfile() -> None:
    with pytest.raises(zipfile.BadZipFile, match="Corrupt extra field 5455"):
        ZipArchive(io.BytesIO(archive_bytes(extra=_TIMESTAMP[:7])))


def test_a_damaged_directory_fails_as_in_zipfile() -> None:
    data = bytearray(archive_bytes())
    start = data.rfind(b"PK\x01\x02")
    data[start : start + 4] = b"PK\x09\x09"

    with pytest.raises(zipfile.BadZipFile, match="Bad magic number"):
        ZipArchive(io.BytesIO(bytes(data)))


def test_members_read_whole_within_the_cap_and_past_it_stop() -> None:
    archive = ZipArchive(io.BytesIO(archive_bytes()))
    info = archive.getinfo("[Content_Types].xml")

    assert read_member(archive, info, 1000) == b"<Types/>" * 10
    assert read_member(archive, info, 20) == (b"<Types/>" * 10)[:20]


@pytest.mark.parametrize("extra", [b"", b"\x55\x54\x05\x00\x01\x00\x00\x00\x00"])
def test_members_of_a_file_read_as_zipfile_reads_them(
    tmp_path: Path, extra: bytes
) -> None:
    path = tmp_path / "package.zip"
    path.write_bytes(archive_bytes(extra=extra))
    archive = ZipArchive(path)

    for info in archive.infolist():
        assert read_member(archive, info, 1000) == archive.read(info)


def test_a_local_header_naming_another_member_is_left_to_zipfile(
    tmp_path: Path,
) -> None:
    path = tmp_path / "package.zip"
    data = archive_bytes()
    # The local header's copy of the name differs from the directory's.
    path.write_bytes(data.replace(b"word/document.xml", b"word/docu-ent.xml", 1))
    archive = ZipArchive(path)

    assert read_member(archive, archive.getinfo("word/document.xml"), 1000) is None


def test_a_python_without_zipfiles_private_helpers_still_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The plain loop uses zipfile's private end-record reader; should a new
    # Python drop it, zipfile's own loop must read the archive instead.
    from docmill.extract import zipread

    changed = types.ModuleType("zipfile")
    changed.__dict__.update(
        {k: v for k, v in vars(zipfile).items() if k != "_EndRecData"}
    )
    monkeypatch.setattr(zipread, "zipfile", changed)
    data = archive_bytes()

    with ZipArchive(io.BytesIO(data)) as archive:
        names = archive.namelist()

    assert names == zipfile.ZipFile(io.BytesIO(data)).namelist()


def test_members_are_looked_up_as_zipfile_looks_them_up() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as writer:
        writer.writestr("a.xml", b"first")
        writer.writestr("b.xml", b"other")
        with pytest.warns(UserWarning, match="Duplicate name"):
            writer.writestr("a.xml", b"second")
    data = buffer.getvalue()
    fast = ZipArchive(io.BytesIO(data))
    plain = zipfile.ZipFile(io.BytesIO(data))

    assert fast.namelist() == plain.namelist() == ["a.xml", "b.xml", "a.xml"]
    assert fields(fast.getinfo("a.xml")) == fields(plain.getinfo("a.xml"))
    assert fast.read("a.xml") == b"second"
    assert [fast.has(name) for name in ("a.xml", "c.xml")] == [True, False]
    with pytest.raises(KeyError, match=r"There is no item named 'c\.xml'"):
        fast.getinfo("c.xml")


def test_a_name_zipinfo_cuts_at_nul_is_looked_up_as_zipfile_looks_it_up() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as writer:
        writer.writestr("a.xmlX", b"cut")
        writer.writestr("b.xml", b"other")
    # Written under a stand-in name of the same length, then renamed in
    # both headers: zipfile cannot write a NUL in a name.
    data = buffer.getvalue().replace(b"a.xmlX", b"a.xml\x00")
    fast = ZipArchive(io.BytesIO(data))
    plain = zipfile.ZipFile(io.BytesIO(data))

    assert fast.namelist() == plain.namelist() == ["a.xml", "b.xml"]
    assert fast.has("a.xml")
    assert fast.read("a.xml") == b"cut"


def test_looking_up_a_member_builds_only_its_info(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built: list[str] = []

    class Counted(zipfile.ZipInfo):
        __slots__ = ()

        def __init__(self, name: str, date_time: tuple[int, ...]) -> None:
            built.append(name)
            super().__init__(name, date_time)  # type: ignore[arg-type]

    archive = ZipArchive(io.BytesIO(archive_bytes()))
    monkeypatch.setattr(zipfile, "ZipInfo", Counted)

    info = archive.getinfo("word/document.xml")

    assert built == ["word/document.xml"]
    assert archive.infolist()[1] is info
