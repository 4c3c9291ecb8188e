"""
Text written into DOCX and XLSX by the object-model libraries comes back out.

The whitespace rule: runs of whitespace are compared as one space and ends
are trimmed, since Word and Excel store text in XML where the writer, not the
author, decides how spaces and line breaks are kept. Characters XML 1.0
cannot hold (most C0 controls) are excluded: no writer can store them.
"""

from __future__ import annotations

import io
import re

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from docmill.extract.base import ExtractContext
from docmill.extract.docx import extract_docx
from docmill.extract.spreadsheet import extract_spreadsheet

XML_TEXT = st.text(
    st.characters(
        blacklist_categories=("Cs", "Cc", "Co", "Cn"),
        blacklist_characters="\ufffe\uffff",
    ),
    min_size=1,
    max_size=60,
).filter(lambda text: text.strip() != "")


def collapse(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(XML_TEXT, min_size=1, max_size=5))
def test_docx_paragraphs_come_back(paragraphs: list[str]) -> None:
    import docx

    document = docx.Document()
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    buffer = io.BytesIO()
    document.save(buffer)

    result = extract_docx(buffer.getvalue(), ExtractContext())

    assert collapse(result.text) == collapse(" ".join(paragraphs))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(XML_TEXT, min_size=1, max_size=6))
@example(["0\u20280"])
def test_xlsx_cell_strings_come_back(cells: list[str]) -> None:
    import openpyxl

    # openpyxl reads a leading "=" as a formula; a spreadsheet user would too.
    cells = [cell for cell in cells if not cell.lstrip().startswith("=")] or ["x"]
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    for row, value in enumerate(cells, start=1):
        sheet.cell(row=row, column=1, value=value)
    buffer = io.BytesIO()
    workbook.save(buffer)

    result = extract_spreadsheet(buffer.getvalue(), ExtractContext())

    # Rows end at "\n" only: a cell may hold U+2028, which splitlines() would
    # also take for the end of a row.
    assert [collapse(line) for line in result.pages[0].split("\n") if line.strip()] == [
        collapse(cell) for cell in cells if collapse(cell)
    ]
