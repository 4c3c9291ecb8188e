from __future__ import annotations

import io
import zipfile
from datetime import date, datetime, time

import openpyxl
import pytest
from openpyxl.utils.datetime import CALENDAR_MAC_1904
from openpyxl.workbook.workbook import Workbook

from docmill.exceptions import CorruptDocument, LimitExceeded
from docmill.extract import mime
from docmill.extract.base import ExtractContext, ExtractionResult, Limits
from docmill.extract.spreadsheet import (
    _header_footer_lines,
    extract_spreadsheet,
    format_value,
    grid_extent,
    header_text,
    ods_grid_extents,
)
from tests.odsfiles import (
    ODS_HEAD,
    ods,
    ods_empty,
    ods_row,
    ods_value,
    wide_ods,
)


def saved(workbook: Workbook) -> bytes:
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def extract(workbook: Workbook, ctx: ExtractContext | None = None) -> ExtractionResult:
    ctx = ctx or ExtractContext()
    ctx.media_type = mime.XLSX
    return extract_spreadsheet(saved(workbook), ctx)


def two_sheets() -> Workbook:
    workbook = openpyxl.Workbook()
    people = workbook.active
    people.title = "People"
    people.append(["Name", "Age"])
    people.append(["Ada", 36])
    places = workbook.create_sheet("Places")
    places.append(["City"])
    places.append(["Paris"])
    return workbook


def test_each_sheet_is_one_page_of_tab_separated_rows() -> None:
    assert extract(two_sheets()).pages == ["Name\tAge\nAda\t36", "City\nParis"]


def test_sheet_names_are_listed_in_metadata() -> None:
    assert extract(two_sheets()).metadata["sheets"] == ["People", "Places"]


def test_each_sheet_is_a_markdown_table_under_its_name() -> None:
    assert extract(two_sheets()).markdown == (
        "## People\n\n| Name | Age |\n| --- | --- |\n| Ada | 36 |\n\n"
        "## Places\n\n| City |\n| --- |\n| Paris |"
    )


def test_text_names_each_sheet_before_its_rows() -> None:
    assert extract(two_sheets()).text == (
        "--- People ---\nName\tAge\nAda\t36\n\n--- Places ---\nCity\nParis"
    )


def test_dates_in_a_1904_workbook_keep_their_day() -> None:
    workbook = openpyxl.Workbook()
    workbook.epoch = CALENDAR_MAC_1904
    workbook.active.append([datetime(2011, 10, 31, 8, 30)])

    assert extract(workbook).pages == ["2011-10-31T08:30:00"]


def test_formulas_show_their_cached_value_not_their_text() -> None:
    workbook = openpyxl.Workbook()
    workbook.active.append([2, 3, "=A1+B1"])

    # openpyxl stores no cached value, so the cell reads as empty.
    assert extract(workbook).pages == ["2\t3"]


def test_header_and_footer_text_follow_the_rows() -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["value"])
    sheet.oddHeader.center.text = "Internal only"
    sheet.oddFooter.right.text = "Page &P of &N"

    assert extract(workbook).pages == [
        "value\n\nHeader: Internal only\nFooter: Page of"
    ]


def test_core_properties_become_metadata() -> None:
    workbook = two_sheets()
    workbook.properties.title = "Census"
    workbook.properties.creator = "Ada Lovelace"

    metadata = extract(workbook).metadata

    assert (metadata["title"], metadata["author"]) == ("Census", "Ada Lovelace")


def test_progress_is_reported_per_sheet() -> None:
    calls: list[tuple[int, int, str]] = []

    extract(two_sheets(), ExtractContext(on_progress=lambda *call: calls.append(call)))

    assert calls == [(1, 2, "sheets"), (2, 2, "sheets")]


def test_truncated_workbook_is_corrupt() -> None:
    ctx = ExtractContext()
    ctx.media_type = mime.XLSX

    with pytest.raises(CorruptDocument):
        extract_spreadsheet(saved(two_sheets())[:-300], ctx)


def test_workbook_unpacking_past_the_limit_is_refused() -> None:
    workbook = openpyxl.Workbook()
    workbook.active.append(["x" * 5000])

    with pytest.raises(LimitExceeded):
        extract(workbook, ExtractContext(limits=Limits(max_unpacked_bytes=4000)))


def with_member(data: bytes, name: str, content: bytes) -> bytes:
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as source,
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for info in source.infolist():
            if info.filename != name:
                target.writestr(info.filename, source.read(info))
        target.writestr(name, content)
    return buffer.getvalue()


def test_styles_part_unpacking_past_the_limit_is_refused() -> None:
    # calamine reads the styles for date formats and has no limit of its own.
    data = saved(two_sheets())
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        styles = archive.read("xl/styles.xml")
    # Whitespace after the root element: still well-formed, 300 KB unpacked.
    padded = styles + b" " * 300_000
    ctx = ExtractContext(limits=Limits(max_unpacked_bytes=200_000))
    ctx.media_type = mime.XLSX

    with pytest.raises(LimitExceeded):
        extract_spreadsheet(with_member(data, "xl/styles.xml", padded), ctx)


_SHEET_HEAD = (
    b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    b'<dimension ref="A1"/><sheetData>'
)


def with_sheet(rows: bytes) -> bytes:
    workbook = openpyxl.Workbook()
    workbook.active.title = "Far"
    sheet = _SHEET_HEAD + rows + b"</sheetData></worksheet>"
    return with_member(saved(workbook), "xl/worksheets/sheet1.xml", sheet)


def inline(reference: bytes, text: bytes) -> bytes:
    return b'<c r="%s" t="inlineStr"><is><t>%s</t></is></c>' % (reference, text)


def test_two_cells_at_opposite_corners_are_refused_not_a_crash() -> None:
    # calamine would allocate a dense 1048576 x 16384 grid (512 GiB) and
    # abort the process; the <dimension> claiming A1 is not believed.
    data = with_sheet(
        b'<row r="1">' + inline(b"A1", b"a") + b"</row>"
        b'<row r="1048576">' + inline(b"XFD1048576", b"b") + b"</row>"
    )
    ctx = ExtractContext()
    ctx.media_type = mime.XLSX

    with pytest.raises(LimitExceeded, match="1048576 rows by 16384 columns"):
        extract_spreadsheet(data, ctx)


def test_a_sheet_past_the_plain_form_within_the_limit_is_read() -> None:
    data = with_sheet(
        b'<row r="1">' + inline(b"A1", b"a") + b"</row>"
        b'<row r="20000">' + inline(b"C20000", b"b") + b"</row>"
    )
    ctx = ExtractContext()
    ctx.media_type = mime.XLSX

    assert extract_spreadsheet(data, ctx).pages == ["a\n\t\tb"]


def test_cells_without_references_count_on_from_the_last_one() -> None:
    row = b"<c><v>1</v></c>" * 30
    sheet = b'<row r="1048576"><c r="ZZ1048576"><v>1</v></c>' + row + b"</row>"

    assert grid_extent(sheet) == (1048576, 702 + 30)


def test_rows_without_references_follow_the_last_row() -> None:
    sheet = (
        b'<x:row r="9"><x:c r="B9"><x:v>1</x:v></x:c></x:row>'
        b"<x:row><x:c><x:v>1</x:v></x:c><x:c r='D3'/></x:row>"
        b'<row><c s="1" r = "E7"><v>1</v></c></row>'
    )

    # The empty <c r='D3'/> is skipped, as calamine skips it.
    assert grid_extent(sheet) == (10, 5)


def test_headers_are_found_after_cell_text_naming_them() -> None:
    sheet = (
        b'<worksheet><sheetData><row r="1"><c r="A1" t="inlineStr"><is>'
        b"<t>Header and Footer</t></is></c></row></sheetData>"
        b"<x:headerFooter><x:oddHeader>&amp;CQuarterly</x:oddHeader>"
        b"<oddFooter>Page &amp;P</oddFooter></x:headerFooter></worksheet>"
    )

    assert _header_footer_lines(sheet, "Sheet1") == [
        "Header: Quarterly",
        "Footer: Page",
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(12345.0, "12345", id="whole-float"),
        pytest.param(0.25, "0.25", id="fraction"),
        pytest.param(True, "TRUE", id="bool"),
        pytest.param(date(2018, 9, 20), "2018-09-20", id="date"),
        pytest.param(time(8, 5), "08:05:00", id="time"),
    ],
)
def test_cell_values_are_shown_as_a_reader_expects(
    value: object, expected: str
) -> None:
    assert format_value(value) == expected


def test_header_codes_are_stripped_and_sections_spaced() -> None:
    code = '&L&"Arial,Bold"&12Left&CCentre &A&RR&&D'

    assert header_text(code, "Sheet1") == "Left Centre Sheet1 R&D"


def test_an_ods_of_repeated_empty_cells_is_refused_not_a_crash() -> None:
    ctx = ExtractContext()
    ctx.media_type = mime.ODS

    with pytest.raises(LimitExceeded, match="'Wide' spans 5000 rows by 16384 columns"):
        extract_spreadsheet(wide_ods(), ctx)


def test_an_ods_row_repeated_past_the_limit_is_refused() -> None:
    data = ods({"Tall": ods_row(ods_value(7, 1000), 1_000_000)})
    ctx = ExtractContext()
    ctx.media_type = mime.ODS

    with pytest.raises(LimitExceeded, match="'Tall' spans 1000000 rows by 1000"):
        extract_spreadsheet(data, ctx)


def test_ods_sheets_are_summed_as_calamine_holds_them_all() -> None:
    half = ods_row(ods_value(1, 4000), 4000)
    data = ods({"One": half, "Two": half})
    ctx = ExtractContext()
    ctx.media_type = mime.ODS

    with pytest.raises(LimitExceeded, match=r"up to 'Two'.* 32000000 cells"):
        extract_spreadsheet(data, ctx)


def test_a_large_ods_with_trailing_repeats_is_read() -> None:
    # As LibreOffice writes a sheet: each row ends in a run of empty cells,
    # and the table in a run of empty rows to the last row of the sheet.
    row = ods_value(1) + ods_value(2, 3) + ods_empty(1020)
    data = ods({"Big": ods_row(row, 20_000) + ods_row(ods_empty(1024), 1_028_576)})
    ctx = ExtractContext()
    ctx.media_type = mime.ODS

    pages = extract_spreadsheet(data, ctx).pages

    assert pages[0].split("\n") == ["1\t2\t2\t2"] * 20_000


def test_ods_extents_follow_calamines_placement() -> None:
    content = (
        ODS_HEAD
        + (
            b'<table:table table:name="S">'
            + ods_row(ods_empty(50), 400)  # before the first value: not counted
            + ods_row(ods_empty(3) + ods_value(1) + ods_empty(900))
            + ods_row(ods_empty(1), 10)  # between values: counted
            + b"<table:table-header-rows>"
            + ods_row(b'<table:table-cell office:value-type="string"/>')
            + b"</table:table-header-rows>"
            + ods_row(ods_empty(2), 1000)  # after the last value: not counted
            + b"</table:table><table:table>"
            + ods_row(ods_value(1, 99))  # unnamed: calamine skips it
            + b"</table:table></office:spreadsheet></office:body>"
            b"</office:document-content>"
        )
    )

    assert ods_grid_extents(content) == [("S", 12, 4)]


def test_a_table_without_repeats_is_as_wide_as_its_widest_row() -> None:
    cell = b'<table:table-cell office:value-type="string"><text:p>x</text:p>'
    cell += b"</table:table-cell>"
    rows = b"<table:table-row>%s</table:table-row>"
    content = (
        ODS_HEAD
        + b'<table:table table:name="Ragged">'
        + rows % (cell * 50)
        + (rows % cell) * 3
        + b"</table:table></office:spreadsheet></office:body>"
        b"</office:document-content>"
    )

    assert ods_grid_extents(content) == [("Ragged", 4, 50)]
