"""
Spreadsheets (XLSX, XLSM, ODS, XLS): every sheet's cell values, read by
calamine, as tab-separated rows in the text and a Markdown table per sheet.

Values are what the cells show, not their formulas; dates come out in ISO
8601 (calamine applies the workbook's 1900 or 1904 epoch). calamine has no
unpacking limit of its own, so the worksheet parts of an XLSX are first read
through the capped ``Package`` reader, which also yields their header and
footer text.
"""

from __future__ import annotations

import html
import io
import re
import resource
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from itertools import repeat
from operator import add
from pathlib import Path
from typing import Any

from python_calamine import CalamineError, CalamineWorkbook, PasswordError

from docmill.exceptions import CorruptDocument, EncryptedDocument, LimitExceeded
from docmill.extract import mime
from docmill.extract.base import ExtractContext, ExtractionResult, Source
from docmill.extract.ooxml import Package, markdown_table
from docmill.extract.sniff import sniff

_HEADER_FOOTER = re.compile(
    rb"<(?:\w+:)?(odd|even|first)(Header|Footer)(?:\s[^>]*)?>(.*?)</", re.DOTALL
)
# Excel's header codes: section starts (&L &C &R), fields (&P page, &D date),
# fonts (&"Arial,Bold"), sizes (&12) and colours (&KFF0000).
_HEADER_CODE = re.compile(
    r'&(?:"[^"]*"|K[0-9A-Fa-f]{6}|K\d{2}[+-]\d{3}|\d+|[LCRPNDTFZGBIUESXYHO])'
)
_HEADER_SECTION = re.compile(r"&[LCR]")

# calamine turns a sheet into a dense grid from A1 (or its first cell) to its
# last row and column before handing it over, about 32 bytes a cell in Rust
# and 12 more once python-calamine lists it: one cell at XFD1048576 asks for
# 512 GiB and the allocation failure aborts the process. A sheet is refused
# when its grid could pass half the address space the process may use.
_GRID_CELL_BYTES = 48
# The cap when the process has none (the children run under job_memory_mb).
_DEFAULT_MEMORY = 2048 * 1024 * 1024
# Where every row and cell start tag gives its place the plain way (r first,
# at most 2 letters and 4 digits), the grid is at most 9999 x 702 cells. The
# patterns find a tag that does not: a longer or differently written
# reference, none at all (calamine then counts on from the last one), or a
# namespace prefix (calamine matches local names). Each pattern has a
# literal start that sre scans for quickly; one alternation of them all was
# three times as slow.
_PLAIN_GRID_BOUND = 9999 * 702
_UNPLAIN_CELL = re.compile(rb'<c(?! r="[A-Za-z]{0,2}[0-9]{1,4}")[\s>/]')
_UNPLAIN_ROW = re.compile(rb'<row(?! r="[0-9]{1,4}")[\s>/]')
_PREFIXED_TAG = re.compile(rb":(?:c|row)[\s>/]")
# A large sheet written the plain way, references only longer: every cell
# sits where its reference says, and the largest ones give the grid.
_ODD_CELL = re.compile(rb'<c(?! r="[A-Za-z]{1,3}[0-9]{1,7}")[\s>/]')
_ODD_ROW = re.compile(rb'<row(?! r="[0-9]{1,7}")[\s>/]')
_CELL_REFERENCE = re.compile(rb'<c r="([A-Za-z]{1,3})([0-9]{1,7})"')
# The sheet's claimed last cell, or failing that its last cell: a guess at the
# grid that one pass then checks.
_DIMENSION_END = re.compile(
    rb'<dimension ref="[A-Za-z0-9]*:?([A-Za-z]{1,3})([0-9]{1,7})"'
)
# Row and cell tags and their r attribute, read as calamine reads them.
_GRID_TAG = re.compile(rb"<(/?)(?:[A-Za-z_][\w.-]*:)?(row|c)(?=[\s/>])([^>]*)>")
_R_ATTRIBUTE = re.compile(rb"""(?:^|\s)r\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_REFERENCE = re.compile(rb"([A-Za-z]*)([0-9]*)")

# ODS tags as calamine matches them (prefix and all); an attribute value may
# hold ">" unescaped, so the tag patterns step over quoted values.
_ODS_ATTRIBUTES = rb"""((?:[^>"']|"[^"]*"|'[^']*')*)>"""
_ODS_TABLE = re.compile(rb"<table:table(?=[\s/>])" + _ODS_ATTRIBUTES)
_ODS_CELL = re.compile(rb"<table:(?:covered-)?table-cell(?=[\s/>])" + _ODS_ATTRIBUTES)
_ODS_ROW_ATTRIBUTES = re.compile(rb"(?=[\s/>])" + _ODS_ATTRIBUTES)
_ROW_TAG_END = frozenset(bytes([byte]) for byte in b" \t\r\n/>")
_ODS_NAME = re.compile(rb"""\stable:name\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_ODS_ROWS_REPEATED = re.compile(
    rb"""\stable:number-rows-repeated\s*=\s*["']([^"']*)["']"""
)
_ODS_COLUMNS_REPEATED = re.compile(
    rb"""\stable:number-columns-repeated\s*=\s*["']([^"']*)["']"""
)
# What makes calamine keep a cell: a value, a formula, or a string type
# (its text, even empty, is the value).
_ODS_VALUE = re.compile(
    rb"\s(?:office:(?:value|string-value|date-value|time-value|boolean-value)"
    rb"|table:formula)\s*=|\soffice:value-type\s*=\s*[\"']string"
)


def extract_spreadsheet(source: Source, ctx: ExtractContext) -> ExtractionResult:
    media_type = _media_type(source, ctx)
    extras: dict[str, list[str]] = {}
    metadata: dict[str, Any] = {}
    if media_type in (mime.XLSX, mime.XLSM):
        with Package(source, ctx, "workbook") as package:
            extras = _headers_and_footers(package)
            metadata = package.core_properties()
            _reserve_for_calamine(package)
    elif media_type == mime.ODS:
        metadata = _ods_metadata(source, ctx)

    workbook = _open(source)
    try:
        sheets = _read_sheets(workbook, ctx)
    finally:
        workbook.close()

    pages: list[str] = []
    markdown: list[str] = []
    for name, rows in sheets:
        page = "\n".join("\t".join(row) for row in rows)
        sheet_markdown = f"## {name}"
        if rows:
            sheet_markdown += "\n\n" + markdown_table(rows)
        if extras.get(name):
            page = (page + "\n\n" + "\n".join(extras[name])).strip("\n")
            sheet_markdown += "\n\n" + "\n\n".join(extras[name])
        pages.append(page)
        markdown.append(sheet_markdown)

    metadata["sheets"] = [name for name, _ in sheets]
    text = "\n\n".join(
        f"--- {name} ---\n{page}".strip("\n")
        for (name, _), page in zip(sheets, pages, strict=True)
    )
    return ExtractionResult(
        media_type,
        text,
        pages=pages,
        markdown="\n\n".join(markdown),
        metadata=metadata,
    )


def _media_type(source: Source, ctx: ExtractContext) -> str:
    if ctx.media_type in mime.SPREADSHEETS:
        return ctx.media_type
    if ctx.media_type == mime.OLE:
        return mime.XLS
    found = sniff(source, ctx.name)
    return mime.XLS if found == mime.OLE else found


def _open(source: Source) -> CalamineWorkbook:
    try:
        if isinstance(source, Path):
            return CalamineWorkbook.from_path(str(source))
        return CalamineWorkbook.from_filelike(io.BytesIO(source))
    except PasswordError as exc:
        message = "the workbook is encrypted with a password; submit it unprotected"
        raise EncryptedDocument(message) from exc
    except (CalamineError, ValueError, OSError) as exc:
        raise CorruptDocument(f"the workbook could not be read ({exc})") from exc


def _read_sheets(
    workbook: CalamineWorkbook, ctx: ExtractContext
) -> list[tuple[str, list[list[str]]]]:
    names = list(workbook.sheet_names)
    sheets: list[tuple[str, list[list[str]]]] = []
    budget = ctx.limits.max_text_chars
    for number, name in enumerate(names, start=1):
        try:
            values = workbook.get_sheet_by_name(name).to_python()
        except (CalamineError, ValueError) as exc:
            raise CorruptDocument(f"sheet {name!r} could not be read ({exc})") from exc
        rows, budget = _rows(values, budget)
        sheets.append((name, rows))
        ctx.progress(number, len(names), "sheets")
    return sheets


def _rows(values: Iterable[list[Any]], budget: int) -> tuple[list[list[str]], int]:
    """
    Turn calamine's values into rows of text, dropping empty rows and the
    empty cells that end a row; stop once ``budget`` characters are spent.
    """
    rows: list[list[str]] = []
    for raw in values:
        # format_value inlined for text and floats, nearly every cell: a call
        # per cell was a fifth of reading a large sheet.
        row = [
            value
            if type(value) is str
            else (
                (
                    str(int(value))
                    if value.is_integer() and -1e15 < value < 1e15
                    else repr(value)
                )
                if type(value) is float
                else format_value(value)
            )
            for value in raw
        ]
        while row and not row[-1]:
            row.pop()
        if not row:
            continue
        joined = "".join(row)
        if "\t" in joined or "\n" in joined:
            row = [cell.replace("\t", " ").replace("\n", " ") for cell in row]
        rows.append(row)
        budget -= len(joined) + len(row)
        # The pipeline cuts the text at the limit anyway; stopping here keeps
        # a million-row sheet from being rendered only to be thrown away.
        if budget <= 0:
            break
    return rows, budget


def format_value(value: Any) -> str:
    """Render a calamine cell value the way a reader expects to see it."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    return str(value)


def _headers_and_footers(package: Package) -> dict[str, list[str]]:
    """Map sheet names to the text of their page headers and footers."""
    workbook = package.main_part("xl/workbook.xml")
    targets = {rel.id: rel.target for rel in package.related(workbook, "worksheet")}
    found: dict[str, list[str]] = {}
    root = package.parse_optional(workbook)
    if root is None:
        return found
    for sheet in root.iter("{*}sheet"):
        name = sheet.get("name", "")
        relation = next(
            (value for key, value in sheet.items() if key.endswith("}id")), ""
        )
        part = targets.get(relation)
        if part is None or part not in package:
            continue
        sheet_xml = package.read(part)
        _check_grid(sheet_xml, name)
        lines = _header_footer_lines(sheet_xml, name)
        if lines:
            found[name] = lines
    return found


def _check_grid(sheet_xml: bytes, sheet_name: str) -> None:
    """Refuse a sheet whose dense grid would not fit the process's memory."""
    allowance = _memory_cap() // 2 // _GRID_CELL_BYTES
    if sheet_xml[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in sheet_xml[:64]:
        # The byte patterns read only UTF-8; calamine may read UTF-16 too.
        rows, columns = grid_extent(sheet_xml.decode("utf-16", "replace").encode())
    elif _PREFIXED_TAG.search(sheet_xml):
        rows, columns = grid_extent(sheet_xml)
    elif not _UNPLAIN_CELL.search(sheet_xml) and not _UNPLAIN_ROW.search(sheet_xml):
        if allowance >= _PLAIN_GRID_BOUND:
            return
        rows, columns = _plain_extent(sheet_xml)
    elif not _ODD_ROW.search(sheet_xml):
        bound = _checked_guess(sheet_xml)
        if bound is not None and bound[0] * bound[1] <= allowance:
            return
        if _ODD_CELL.search(sheet_xml):
            rows, columns = grid_extent(sheet_xml)
        else:
            rows, columns = _plain_extent(sheet_xml)
    else:
        rows, columns = grid_extent(sheet_xml)
    if rows * columns > allowance:
        raise LimitExceeded(
            f"sheet {sheet_name!r} spans {rows} rows by {columns} columns, more "
            f"cells than can be read within the memory limit ({allowance} cells)"
        )


def _checked_guess(sheet_xml: bytes) -> tuple[int, int] | None:
    """
    A bound on the grid of a sheet whose cells all have plain references,
    from the extent it claims; None when a cell lies past that bound or has
    no plain reference.

    Listing every reference costs half a second per million cells; one
    search for a reference past the bound costs a tenth of that. The bound
    rounds the claim up to its leading letter and digit (J20000 gives
    columns to J, rows to 29999), so one pattern can test it.
    """
    found = _DIMENSION_END.search(sheet_xml, 0, 4096)
    if found is not None:
        letters, digits = found.groups()
    else:
        last = sheet_xml.rfind(b'<c r="')
        found = _CELL_REFERENCE.match(sheet_xml, last) if last >= 0 else None
        if found is None:
            return None
        letters, digits = found.groups()
    letters = letters.upper()
    first_letter, first_digit = letters[0], digits[0] - 48
    # A reference past the bound: more letters, as many with a later first
    # one, more digits, or as many with a greater first one. The same search
    # finds a cell without a plain reference, which the bound cannot cover.
    past = [f"[A-Za-z]{{{len(letters) + 1}}}"]
    if first_letter < ord("Z"):
        later = chr(first_letter + 1)
        past.append(f"[{later}-Z{later.lower()}-z][A-Za-z]{{{len(letters) - 1}}}[0-9]")
    numbers = [f"[0-9]{{{len(digits) + 1}}}"]
    if first_digit < 9:
        numbers.append(f'[{first_digit + 1}-9][0-9]{{{len(digits) - 1}}}"')
    pattern = (
        rf'<c(?:(?! r="[A-Za-z]{{1,3}}[0-9]{{1,7}}")[\s>/]'
        rf'| r="(?:{"|".join(past)}|[A-Za-z]+(?:{"|".join(numbers)})))'
    )
    if re.search(pattern.encode(), sheet_xml):
        return None
    rows = (first_digit + 1) * 10 ** (len(digits) - 1) - 1
    columns = _column_number(bytes([first_letter]) + b"Z" * (len(letters) - 1))
    return rows, columns


def _plain_extent(sheet_xml: bytes) -> tuple[int, int]:
    # Every cell has a plain reference: the grid reaches the largest row and
    # column among them. Distinct values first, so int() and the column
    # arithmetic run once per row and column, not per cell.
    references = _CELL_REFERENCE.findall(sheet_xml)
    if not references:
        return 0, 0
    letters, digits = zip(*references, strict=True)
    rows = max(map(int, set(digits)))
    columns = max(map(_column_number, set(letters)))
    return rows, columns


def _memory_cap() -> int:
    soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
    return _DEFAULT_MEMORY if soft == resource.RLIM_INFINITY else soft


def grid_extent(sheet_xml: bytes) -> tuple[int, int]:
    """
    Rows and columns from A1 to the farthest cell calamine could place.

    Follows calamine's reading: a row or cell with an ``r`` attribute goes
    where it says; a row without one follows the last row, a cell without one
    the last cell of its row. Every cell counts, empty or not, so the grid
    found is never smaller than calamine's. A Python step per tag: this runs
    only for sheets the plain-form test above could not clear.
    """
    row_index = column_index = 0
    rows = columns = 0
    for closing, name, attributes in _GRID_TAG.findall(sheet_xml):
        if closing:
            if name == b"row":
                row_index += 1
                column_index = 0
            continue
        if attributes.endswith(b"/"):
            # An empty element: calamine reads start tags only.
            continue
        found = _R_ATTRIBUTE.search(attributes)
        reference = b""
        if found is not None:
            reference = found.group(1) if found.group(1) is not None else found.group(2)
        letters, digits = _REFERENCE.match(reference).groups()  # type: ignore[union-attr]
        if name == b"row":
            if digits:
                row_index = int(digits) - 1
            continue
        if letters:
            column_index = _column_number(letters) - 1
        row = int(digits) - 1 if digits and letters else row_index
        rows = max(rows, row + 1)
        columns = max(columns, column_index + 1)
        column_index += 1
    return rows, columns


def _column_number(letters: bytes) -> int:
    number = 0
    for letter in letters.upper():
        number = number * 26 + letter - 64
    return number


def _reserve_for_calamine(package: Package) -> None:
    # calamine inflates the shared strings and the styles (for date formats)
    # with no limit; the sheets it reads were read above.
    workbook = package.main_part("xl/workbook.xml")
    names = [
        rel.target
        for kind in ("sharedStrings", "styles")
        for rel in package.related(workbook, kind)
        if rel.target in package
    ]
    if "xl/styles.xml" in package and "xl/styles.xml" not in names:
        names.append("xl/styles.xml")
    package.reserve(names)


def _header_footer_lines(sheet_xml: bytes, sheet_name: str) -> list[str]:
    lines: list[str] = []
    # The pattern opens with "<", which a sheet holds at every cell, so the
    # regex engine would try it at each; a match needs "Header" or "Footer"
    # after its "<", and bytes.find reaches the first of those in C. No
    # match can start before the last "<" ahead of it.
    first = min(
        (
            at
            for at in (sheet_xml.find(b"Header"), sheet_xml.find(b"Footer"))
            if at >= 0
        ),
        default=-1,
    )
    if first < 0:
        return lines
    start = max(sheet_xml.rfind(b"<", 0, first), 0)
    for match in _HEADER_FOOTER.finditer(sheet_xml, start):
        kind = match.group(2).decode()
        raw = html.unescape(match.group(3).decode("utf-8", "replace"))
        text = header_text(raw, sheet_name)
        line = f"{kind}: {text}"
        if text and line not in lines:
            lines.append(line)
    return lines


def header_text(code: str, sheet_name: str) -> str:
    """Strip Excel's formatting codes from a header or footer definition."""
    # "&&" is a literal ampersand; park it while the codes are removed.
    code = code.replace("&&", "\x00").replace("&A", sheet_name)
    code = _HEADER_SECTION.sub(" ", code)
    code = _HEADER_CODE.sub("", code)
    return " ".join(code.replace("\x00", "&").split())


def _ods_metadata(source: Source, ctx: ExtractContext) -> dict[str, Any]:
    from docmill.extract.odf import read_meta

    with Package(source, ctx, "ODS") as package:
        # content.xml is read (and so size-checked) before calamine inflates it.
        _check_ods_grids(package.read("content.xml"))
        return read_meta(package)


def _check_ods_grids(content: bytes) -> None:
    """
    Refuse a workbook whose tables' grids would not fit the process's memory.

    calamine reads every table of an ODS when the workbook is opened and
    keeps them all, so the tables are summed, not weighed one by one.

    Known shortcomings: the bound counts cells at 48 bytes, but a value
    repeated across the grid becomes a Python object per cell (about 105
    bytes a cell for numbers, 200 for short strings, measured), so a grid of
    repeated values near the bound can still pass the cap; weighing each
    repeated cell by its value, or reading rows lazily (iter_rows) instead of
    to_python, would close it. A table nested in a cell starts a new table
    for the scan, splitting its parent's rows.
    """
    allowance = _memory_cap() // 2 // _GRID_CELL_BYTES
    total = 0
    for name, rows, columns in ods_grid_extents(content, allowance):
        total += rows * columns
        if rows * columns > allowance:
            raise LimitExceeded(
                f"sheet {name!r} spans {rows} rows by {columns} columns, more "
                f"cells than can be read within the memory limit ({allowance} cells)"
            )
        if total > allowance:
            raise LimitExceeded(
                f"the sheets up to {name!r} ({rows} rows by {columns} columns) "
                f"span {total} cells together, more than can be read within the "
                f"memory limit ({allowance} cells)"
            )


def ods_grid_extents(content: bytes, enough: int = 0) -> list[tuple[str, int, int]]:
    """
    Each named table's rows and columns as calamine allocates them, or more.

    calamine's ODS reader (0.37, found by reading small files back) keeps,
    for each row, every cell up to its last one holding a value or formula,
    repeats counted and the leading empty ones too; empty cells that end a
    row are dropped. Its grid then runs from the first row holding one to the
    last, empty rows between them counted with their repeats, those before
    and after not. The columns here run from A, so they bound both the rows
    it keeps while reading and the grid it trims to the first used column.

    calamine matches tag names with their ``table:`` prefix, and so do the
    scans here, on the bytes (nothing is expanded). A Python step per cell
    (lxml's iterparse) took three times calamine's whole read, so the scans
    go a row at a time, C-level where they can: a row without repeats is
    taken as holding a value when it names an ``office:`` attribute or a
    formula, and as one cell per 19 bytes (the shortest cell tag) while the
    table's grid stays within ``enough`` cells; past that its cells are
    counted. Any of these only errs high.
    """
    found: list[tuple[str, int, int]] = []
    starts = []
    at = 0
    while True:
        table = _ODS_TABLE.search(content, at)
        if table is None:
            break
        starts.append(table)
        close = content.find(b"</table:table>", table.end())
        at = len(content) if close < 0 else close
    for number, table in enumerate(starts):
        name = _ODS_NAME.search(table.group(1))
        if name is None:
            continue
        end = starts[number + 1].start() if number + 1 < len(starts) else len(content)
        rows = content[table.end() : end].split(b"<table:table-row")[1:]
        extent = _table_extent(rows, enough)
        quoted = name.group(1) if name.group(1) is not None else name.group(2)
        found.append((html.unescape(quoted.decode("utf-8", "replace")), *extent))
    return found


def _table_extent(
    rows: list[bytes], enough: int, exact: bool = False
) -> tuple[int, int]:
    repeated = list(map(bytes.__contains__, rows, repeat(b"-repeated")))
    if not any(repeated):
        # Every row counts once, and no row can be wider than its bytes allow.
        height = len(rows)
        width = max(map(len, rows), default=0) // 19
        if height * width > enough:
            plain = map(bytes.count, rows, repeat(b"<table:table-cell"))
            covered = map(bytes.count, rows, repeat(b"<table:covered-table-cell"))
            width = max(map(add, plain, covered), default=0)
        return height, width
    valued = map(bytes.__contains__, rows, repeat(b"office:"))
    formulas = map(bytes.__contains__, rows, repeat(b"table:formula"))
    height = width = waiting = 0
    for row, has_repeats, has_value, has_formula in zip(
        rows, repeated, valued, formulas, strict=False
    ):
        if row[:1] not in _ROW_TAG_END:
            # <table:table-rows>, <table:table-row-group>: not a row.
            continue
        repeats = 1
        if has_repeats:
            cells = _row_width(row, exact)
            # No "<" can stand in an attribute value: the row's tag ends
            # before the first one.
            tag_end = row.find(b"<")
            if row.find(b"number-rows-repeated", 0, tag_end) >= 0:
                found = _ODS_ROWS_REPEATED.search(row, 0, tag_end)
                repeats = 1 if found is None else _repeat(found.group(1))
        else:
            cells = 0
            if has_value or has_formula:
                cells = _row_width(row, True) if exact else len(row) // 19
        if cells:
            height += waiting + repeats
            waiting = 0
            width = max(width, cells)
        elif height:
            waiting += repeats
    if height * width > enough and not exact:
        # The bounds by bytes did not clear it: count the cells.
        return _table_extent(rows, enough, exact=True)
    return height, width


def _row_width(row: bytes, exact: bool) -> int:
    """Cells up to the last one holding a value or formula, repeats counted."""
    end = len(row)
    while True:
        last = max(
            row.rfind(b"<table:table-cell", 0, end),
            row.rfind(b"<table:covered-table-cell", 0, end),
        )
        if last < 0:
            return 0
        if _ODS_VALUE.search(row, last, end):
            break
        end = last
    if row.find(b"number-columns-repeated", 0, end) < 0:
        if not exact:
            # No cell is shorter than 19 bytes.
            return max(end // 19, 1)
        cells = row.count(b"<table:table-cell", 0, end)
        return cells + row.count(b"<table:covered-table-cell", 0, end)
    width = position = 0
    for cell in _ODS_CELL.finditer(row, 0, end):
        attributes = cell.group(1)
        repeated = _ODS_COLUMNS_REPEATED.search(attributes)
        position += 1 if repeated is None else _repeat(repeated.group(1))
        if _ODS_VALUE.search(attributes):
            width = position
    # The last cell was kept for a value found in it, its text perhaps.
    return max(width, position)


def _repeat(value: bytes) -> int:
    try:
        # calamine refuses a count that is not a number; any guess will do.
        return max(int(html.unescape(value.decode("ascii", "replace"))), 1)
    except ValueError:
        return 1
