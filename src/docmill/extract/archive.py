"""
ZIP archives: every member extracted as a child document.

The text holds each readable member's text under a ``== name ==`` line.
Members are read within the context's limits: at most
``max_archive_members`` files, and ``max_unpacked_bytes`` in all for the
whole document, archives nested in it included, counted while inflating
because a member's declared size can lie; nesting depth is
``extract_child``'s business. Passing the budget anywhere, even deep in a
nested archive, fails the document as ``limit_exceeded``. A member that is a
byte-for-byte copy of its own archive (a zip quine) is recorded as
``limit_exceeded`` without being opened again.

The sniffer calls a ZIP generic when it finds no OOXML, ODF or EPUB marker
in it; such an archive submitted under an office document's name is a broken
office document, and fails as corrupt rather than being listed.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import PurePosixPath

from docmill.exceptions import (
    CorruptDocument,
    EmptyDocument,
    EncryptedDocument,
    LimitExceeded,
)
from docmill.extract import mime
from docmill.extract.base import (
    ChildResult,
    ExtractContext,
    ExtractionResult,
    Source,
    UnpackBudget,
    open_source,
    read_source,
)

_CHUNK_BYTES = 64 * 1024
_OFFICE_SUFFIXES = {
    ".docx": "Word document",
    ".docm": "Word document",
    ".dotx": "Word template",
    ".xlsx": "Excel workbook",
    ".xlsm": "Excel workbook",
    ".pptx": "PowerPoint presentation",
    ".pptm": "PowerPoint presentation",
    ".odt": "OpenDocument text",
    ".ods": "OpenDocument spreadsheet",
    ".odp": "OpenDocument presentation",
    ".epub": "EPUB book",
}
# What zipfile and zlib raise for archives damaged in their central
# directory, local headers or compressed data.
_DAMAGE = (zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError)


def extract_zip(source: Source, ctx: ExtractContext) -> ExtractionResult:
    with open_source(source) as stream:
        try:
            archive = zipfile.ZipFile(stream)
        except _DAMAGE as exc:
            raise CorruptDocument(_damaged(ctx, exc)) from exc
        with archive:
            _refuse_broken_office_file(ctx, archive)
            if ctx.password:
                archive.setpassword(ctx.password.encode("utf-8"))
            members = [info for info in archive.infolist() if not info.is_dir()]
            if not members:
                raise EmptyDocument("the archive holds no files")
            if len(members) > ctx.limits.max_archive_members:
                raise LimitExceeded(
                    f"the archive holds {len(members)} files, more than the "
                    f"limit of {ctx.limits.max_archive_members}"
                )
            children = _read_members(archive, members, source, ctx)

    if all(child.error_code == "encrypted" for child in children):
        raise EncryptedDocument("every file in the archive is encrypted")
    sections = [
        f"== {child.name} ==\n{child.result.text}".rstrip("\n")
        for child in children
        if child.result is not None
    ]
    return ExtractionResult(
        mime.ZIP,
        "\n\n".join(sections),
        metadata={"members": len(members)},
        children=children,
    )


def _read_members(
    archive: zipfile.ZipFile,
    members: list[zipfile.ZipInfo],
    source: Source,
    ctx: ExtractContext,
) -> list[ChildResult]:
    own_size = len(source) if isinstance(source, bytes) else source.stat().st_size
    budget = ctx.unpacked
    children = []
    for done, info in enumerate(members, start=1):
        try:
            data = _read_member(archive, info, budget)
        except RuntimeError as exc:
            # zipfile's word for a member that needs a password.
            children.append(
                ChildResult(
                    info.filename,
                    error_code="encrypted",
                    error_message=f"not read: {exc}",
                )
            )
            continue
        except NotImplementedError as exc:
            children.append(
                ChildResult(
                    info.filename,
                    error_code="unsupported_format",
                    error_message=f"not read: {exc}",
                )
            )
            continue
        except _DAMAGE as exc:
            raise CorruptDocument(
                f"member {info.filename!r} of the archive is damaged: {exc}"
            ) from exc
        if len(data) == own_size and data == read_source(source):
            children.append(_quine(info.filename))
        else:
            children.append(ctx.extract_child(info.filename, data))
        ctx.progress(done, len(members), "member")
    return children


def _read_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: UnpackBudget
) -> bytes:
    chunks: list[bytes] = []
    with archive.open(info) as member:
        while True:
            # Spent by an earlier member: reading on (a read of 0 or fewer
            # bytes) would take this one for empty, or read it whole.
            if budget.left < 0:
                raise LimitExceeded(
                    f"unpacking {info.filename!r} passes the limit of "
                    f"{budget.limit} unpacked bytes for one document, the "
                    "archives nested in it included"
                )
            chunk = member.read(min(_CHUNK_BYTES, budget.left + 1))
            if not chunk:
                return b"".join(chunks)
            budget.left -= len(chunk)
            chunks.append(chunk)


def _quine(name: str) -> ChildResult:
    return ChildResult(
        name,
        error_code="limit_exceeded",
        error_message="not read: the member is a copy of the archive holding it",
    )


def _refuse_broken_office_file(ctx: ExtractContext, archive: zipfile.ZipFile) -> None:
    if ctx.media_type != mime.ZIP or not ctx.name:
        return
    kind = _OFFICE_SUFFIXES.get(PurePosixPath(ctx.name).suffix.lower())
    if kind is None:
        return
    names = ", ".join(archive.namelist()[:5]) or "nothing"
    article = "an" if kind[0] in "AEIOU" else "a"
    raise CorruptDocument(
        f"{ctx.name!r} is named as {article} {kind} but is a plain zip archive "
        f"without the parts one needs (it holds {names}); the file is damaged or "
        "was renamed"
    )


def _damaged(ctx: ExtractContext, exc: Exception) -> str:
    suffix = PurePosixPath(ctx.name).suffix.lower() if ctx.name else ""
    kind = _OFFICE_SUFFIXES.get(suffix)
    if kind:
        return (
            f"the {kind} is damaged: its zip container cannot be opened ({exc}); "
            "it may have been cut short in transfer"
        )
    return f"the zip archive is damaged and cannot be opened: {exc}"
