"""
Finding a table by its header words, in any format docmill reads.

Two sources of rows:

- **Structure**: DOCX, XLSX, ODS, HTML and the like come out of extraction
  with Markdown pipe tables (or, failing that, tab-separated lines), so their
  cells are already known and only the header row has to be found.
- **Geometry**: a PDF has no cells, only characters at positions. Its
  characters (pypdfium2 char boxes) are grouped into lines and words; the
  header line fixes each column's horizontal span, and every later word goes
  to the column it overlaps most. A table that runs over several pages
  continues on each page after its repeated header line.

Either way, a row needs at least two non-empty cells (so page footers and
stray captions drop out), a repeated header is skipped, and a row whose
first cell starts with a ``stop_at`` word ends the table.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from docmill.parsing.rules import TableColumn

PageRange = tuple[int, int]  # 0-based, inclusive


@dataclass
class FoundTable:
    rows: list[dict[str, str]] = field(default_factory=list)
    pages: list[int] = field(default_factory=list)  # 1-based, where rows were


def _norm(text: str) -> str:
    return " ".join(text.casefold().replace(":", " ").split())


def _stops(cell: str, stop_at: list[str]) -> bool:
    first = _norm(cell)
    return any(first.startswith(_norm(word)) for word in stop_at if _norm(word))


# ---------------------------------------------------------------- structure


def grids_from_markdown(markdown: str) -> list[list[list[str]]]:
    """The pipe tables of a Markdown text, each a list of rows of cells."""
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in markdown.splitlines():
        stripped = line.strip()
        if stripped.startswith("|") and stripped.endswith("|") and len(stripped) > 1:
            cells = [
                cell.strip().replace("\\|", "|")
                for cell in re.split(r"(?<!\\)\|", stripped[1:-1])
            ]
            if not all(re.fullmatch(r":?-{3,}:?", cell) for cell in cells):
                current.append(cells)
            continue
        if current:
            tables.append(current)
            current = []
    if current:
        tables.append(current)
    return tables


def grids_from_tabs(text: str) -> list[list[list[str]]]:
    """Runs of tab-separated lines, the plain-text form of a table."""
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in text.splitlines():
        if "\t" in line:
            current.append([cell.strip() for cell in line.split("\t")])
        elif current:
            tables.append(current)
            current = []
    if current:
        tables.append(current)
    return tables


def _header_indexes(cells: list[str], columns: list[TableColumn]) -> list[int] | None:
    wanted = [_norm(column.header) for column in columns]
    found: list[int] = []
    start = 0
    for header in wanted:
        for index in range(start, len(cells)):
            if _norm(cells[index]) == header:
                found.append(index)
                start = index + 1
                break
        else:
            return None
    return found


def table_from_grids(
    grids: list[list[list[str]]], columns: list[TableColumn], stop_at: list[str]
) -> FoundTable:
    """The rows under the first header row that names every column."""
    found = FoundTable()
    for grid in grids:
        indexes: list[int] | None = None
        for cells in grid:
            header = _header_indexes(cells, columns)
            if header is not None:
                indexes = header
                continue
            if indexes is None:
                continue
            values = [cells[i] if i < len(cells) else "" for i in indexes]
            if _stops(values[0] or next((c for c in cells if c), ""), stop_at):
                return found
            if sum(1 for value in values if value) >= 2:
                found.rows.append(
                    {c.name or "": v for c, v in zip(columns, values, strict=True)}
                )
        if indexes is not None and found.rows:
            return found
    return found


# ----------------------------------------------------------------- geometry


@dataclass
class Word:
    text: str
    x0: float
    x1: float


@dataclass
class Line:
    page: int  # 0-based
    words: list[Word]
    em: float  # the line's font size, from its glyphs' loose boxes


def pdf_lines(original: Path | bytes, pages: PageRange | None = None) -> Iterator[Line]:
    """
    The text lines of a PDF, top to bottom, from pdfium's character boxes.

    Args:
        original: the PDF, its file or its bytes.
        pages: 0-based inclusive page range to read; all pages when None.
    """
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    document = pdfium.PdfDocument(original)
    try:
        first, last = pages or (0, len(document) - 1)
        for index in range(max(first, 0), min(last, len(document) - 1) + 1):
            page = document[index]
            textpage = page.get_textpage()
            try:
                yield from _page_lines(index, textpage, pdfium_c)
            finally:
                textpage.close()
                page.close()
    finally:
        document.close()


def _page_lines(index: int, textpage: object, raw: object) -> Iterator[Line]:
    chars = []
    count = textpage.count_chars()  # type: ignore[attr-defined]
    for i in range(count):
        code = raw.FPDFText_GetUnicode(textpage, i)  # type: ignore[attr-defined]
        char = chr(code) if code else " "
        if char.isspace() or char == "\ufffe":
            continue
        left, bottom, right, top = textpage.get_charbox(i, loose=True)  # type: ignore[attr-defined]
        chars.append((char, left, bottom, right, top))
    # Rows of characters whose vertical centres lie within half a glyph
    # height of each other, top of the page first.
    chars.sort(key=lambda c: (-(c[2] + c[4]) / 2, c[1]))
    rows: list[list[tuple[str, float, float, float, float]]] = []
    for box in chars:
        centre = (box[2] + box[4]) / 2
        height = max(box[4] - box[2], 1.0)
        if rows:
            last = rows[-1][0]
            if abs((last[2] + last[4]) / 2 - centre) <= height / 2:
                rows[-1].append(box)
                continue
        rows.append([box])
    for row in rows:
        row.sort(key=lambda c: c[1])
        heights = sorted(c[4] - c[2] for c in row)
        em = max(heights[len(heights) // 2], 1.0)
        yield Line(index, _words(row, em), em)


def _words(row: list[tuple[str, float, float, float, float]], em: float) -> list[Word]:
    # A space is about a quarter of an em wide; letters sit closer than that.
    gap = em * 0.15
    words: list[Word] = []
    for char, left, _bottom, right, _top in row:
        if words and left - words[-1].x1 <= gap:
            words[-1].text += char
            words[-1].x1 = max(words[-1].x1, right)
        else:
            words.append(Word(char, left, right))
    return words


def _phrases(words: list[Word], height: float) -> list[Word]:
    phrases: list[Word] = []
    for word in words:
        if phrases and word.x0 - phrases[-1].x1 <= height:
            phrases[-1] = Word(
                f"{phrases[-1].text} {word.text}", phrases[-1].x0, word.x1
            )
        else:
            phrases.append(Word(word.text, word.x0, word.x1))
    return phrases


def _header_spans(
    words: list[Word], columns: list[TableColumn]
) -> list[tuple[float, float]] | None:
    tokens = [_norm(word.text) for word in words]
    spans: list[tuple[float, float]] = []
    start = 0
    for column in columns:
        wanted = _norm(column.header).split()
        for index in range(start, len(tokens) - len(wanted) + 1):
            if tokens[index : index + len(wanted)] == wanted:
                end = index + len(wanted) - 1
                spans.append((words[index].x0, words[end].x1))
                start = end + 1
                break
        else:
            return None
    return spans


def _assign(phrase: Word, spans: list[tuple[float, float]]) -> int:
    def overlap(span: tuple[float, float]) -> float:
        return min(phrase.x1, span[1]) - max(phrase.x0, span[0])

    best = max(range(len(spans)), key=lambda i: overlap(spans[i]))
    if overlap(spans[best]) > 0:
        return best
    centre = (phrase.x0 + phrase.x1) / 2
    return min(
        range(len(spans)),
        key=lambda i: max(spans[i][0] - centre, centre - spans[i][1], 0),
    )


def table_from_pdf(
    original: Path | bytes,
    columns: list[TableColumn],
    stop_at: list[str],
    pages: PageRange | None = None,
) -> FoundTable:
    """The rows of a PDF table, following it across pages."""
    found = FoundTable()
    spans: list[tuple[float, float]] | None = None
    header_page = -1
    for line in pdf_lines(original, pages):
        if not line.words:
            continue
        header = _header_spans(line.words, columns)
        if header is not None:
            spans, header_page = header, line.page
            continue
        # Rows belong to the table only below a header on the same page; a
        # page without a repeated header has no table rows.
        if spans is None or line.page != header_page:
            continue
        cells = [""] * len(columns)
        # Words of one cell are a space apart; cells, a column gap.
        phrases = _phrases(line.words, line.em)
        for phrase in phrases:
            index = _assign(phrase, spans)
            cells[index] = f"{cells[index]} {phrase.text}".strip()
        if _stops(phrases[0].text, stop_at):
            break
        if sum(1 for cell in cells if cell) >= 2:
            found.rows.append(
                {c.name or "": v for c, v in zip(columns, cells, strict=True)}
            )
            if not found.pages or found.pages[-1] != line.page + 1:
                found.pages.append(line.page + 1)
    return found
