"""
CSV and TSV: rows of fields.

``text`` is the file as written (decoded, line breaks made ``\\n``), so a
search for a row finds it with its quotes and delimiters; ``markdown`` is a
table whose first row is the header. ``metadata`` says how the file was read:
``rows`` (rows that are not empty), ``columns`` (the widest row),
``delimiter`` and ``encoding``.
"""

from __future__ import annotations

import csv
import io
import itertools
from functools import cache
from itertools import repeat

from docmill.extract import mime
from docmill.extract.base import ExtractContext, ExtractionResult, Source, read_source
from docmill.extract.text import (
    decode_lines,
    encoding_metadata,
    text_warnings,
)

# csv.Sniffer runs regular expressions over the whole sample; a few dozen
# rows settle the dialect and keep it fast on wide files.
SNIFF_SAMPLE_CHARS = 16 * 1024
_DELIMITERS = ",;\t|"


def extract_delimited(source: Source, ctx: ExtractContext) -> ExtractionResult:
    decoded, text, utf8 = decode_lines(read_source(source), ctx.charset)
    metadata = encoding_metadata(decoded)
    warnings = text_warnings(decoded, ctx.charset)
    media_type = mime.TSV if ctx.media_type == mime.TSV else mime.CSV

    dialect = sniff_dialect(text, prefer_tab=media_type == mime.TSV)
    plain = _even_table(text, dialect, utf8) or _plain_table(text, dialect)
    if plain is not None:
        count, columns, markdown = plain
        metadata.update(rows=count, columns=columns, delimiter=dialect.delimiter)
        return ExtractionResult(
            media_type,
            text,
            markdown=markdown,
            metadata=metadata,
            warnings=warnings,
            utf8=(text, utf8) if utf8 is not None else None,
        )
    try:
        rows = read_rows(text, dialect)
    except csv.Error as exc:
        # A field longer than csv's limit or a NUL byte: the text still reads.
        warnings.append(f"rows not split: {exc}")
        return ExtractionResult(media_type, text, metadata=metadata, warnings=warnings)

    metadata.update(
        rows=len(rows),
        columns=max(map(len, rows), default=0),
        delimiter=dialect.delimiter,
    )
    # Only a quoted (or escaped) field can hold a line break; without quotes
    # and pipes anywhere in the text, no cell needs cleaning.
    clean = "|" not in text and all(
        mark not in text for mark in (dialect.quotechar, dialect.escapechar) if mark
    )
    return ExtractionResult(
        media_type,
        text,
        markdown=markdown_table(rows, clean=clean),
        metadata=metadata,
        warnings=warnings,
    )


# Per delimiter: bytes.translate's deletion set that leaves only that
# delimiter and line feeds, a file's row skeleton.
_ALL_BUT = {
    mark: bytes(byte for byte in range(256) if byte not in (ord(mark), 0x0A))
    for mark in _DELIMITERS
}


# Bytes of a table's UTF-8 text made Markdown at a time (a slice runs on to
# the end of its line).
_TABLE_SLICE = 32 * 1024


def _even_table(
    text: str, dialect: type[csv.Dialect], utf8: bytes | None
) -> tuple[int, int, str] | None:
    """
    ``_plain_table``'s answer for a file whose lines all hold the same number
    of delimiters, found without listing its lines.

    The UTF-8 bytes with everything but delimiters and line feeds deleted
    must be one row's skeleton repeated; the delimiter and the line feed
    never occur inside a longer UTF-8 sequence, so that holds exactly when
    every line of ``text`` has as many delimiters. No line may be empty or
    delimiters alone (``_plain_table`` drops those), bar the empty one after
    a final line feed. The Markdown is then the text with each delimiter
    made a cell border and each line feed a row border: two ``replace`` over
    its bytes, where ``_plain_table``'s split, per-line strip and count
    and join cost four times as much on a large file. None when any of that
    does not hold, or for a one-column file (whose skeleton cannot tell an
    empty line).
    """
    delimiter = dialect.delimiter
    if utf8 is None or delimiter not in _ALL_BUT or dialect.skipinitialspace:
        return None
    marks = (dialect.quotechar, dialect.escapechar, "|")
    if any(mark and mark in text for mark in marks):
        return None
    newline = utf8.find(b"\n")
    if newline < 0:
        return None
    mark = delimiter.encode("ascii")
    inner = utf8[:newline].count(mark)
    row = mark * inner + b"\n"
    if not inner or utf8.startswith(row) or b"\n" + row in utf8:
        return None
    ends = utf8.endswith(b"\n")
    if not ends and utf8.endswith(b"\n" + row[:-1]):
        return None
    # A line longer than csv's field limit sends the file to the general
    # path. Such a line spans a whole window of half the limit, wherever the
    # windows start, so a window without a line feed is how one shows (a
    # shorter line may show too, and only costs the general path).
    window = csv.field_size_limit() // 2
    if len(utf8) > 2 * window and any(
        utf8.find(b"\n", start, start + window) < 0
        for start in range(0, len(utf8), max(window, 1))
    ):
        return None
    skeleton = utf8.translate(None, _ALL_BUT[delimiter])
    full = len(skeleton) // len(row)
    if skeleton != row * full + (b"" if ends else row[:-1]):
        return None
    rows = full if ends else full + 1
    first = text.find("\n")
    header = text[:first].replace(delimiter, " | ")
    separator = "|" + " --- |" * (inner + 1)
    if rows == 1:
        return 1, inner + 1, f"| {header} |\n{separator}"
    # The rest a slice at a time: a slice and its replacements come from
    # malloc's free lists, where text-sized ones would be fresh pages, a
    # fault every 4 KiB. The marks are replaced in the UTF-8 bytes, each
    # slice then decoded: on a table of Latin-1 text, str.replace took 6 ms
    # where this takes 4, the decode included. A slice ends after a line
    # feed, never inside a character.
    parts = [f"| {header} |\n{separator}\n| "]
    end = len(utf8) - 1 if ends else len(utf8)
    start = newline + 1
    while start < end:
        stop = utf8.find(b"\n", start + _TABLE_SLICE, end) + 1 or end
        part = utf8[start:stop].replace(mark, b" | ").replace(b"\n", b" |\n| ")
        parts.append(part.decode("utf-8"))
        start = stop
    parts.append(" |")
    return rows, inner + 1, "".join(parts)


def _plain_table(text: str, dialect: type[csv.Dialect]) -> tuple[int, int, str] | None:
    """
    ``(rows, columns, markdown)`` of a table that needs no cell parsing.

    Without quotes, escapes, pipes or padding after the delimiter, and with
    every row as wide as the others (the usual machine-written CSV), a row's
    Markdown is its line with each delimiter made a cell border: the whole
    table is then a few passes of ``str`` methods in C instead of a list of
    cells per row, which cost several times the decode on a large file.
    None when any of that does not hold; ``read_rows`` does the general case.
    """
    delimiter = dialect.delimiter
    marks = (dialect.quotechar, dialect.escapechar, "|")
    if dialect.skipinitialspace or delimiter in " |\n":
        return None
    if any(mark and mark in text for mark in marks):
        return None
    lines = text.split("\n")
    if max(map(len, lines)) > csv.field_size_limit():
        return None
    # A line of delimiters alone is a row of empty cells, which read_rows
    # drops; compress keeps the lines that hold anything else, in C.
    lines = list(itertools.compress(lines, map(str.strip, lines, repeat(delimiter))))
    widths = set(map(str.count, lines, repeat(delimiter)))
    if len(widths) != 1:
        return None
    width = widths.pop() + 1
    separator = "|" + " --- |" * width
    header = "| " + lines[0].replace(delimiter, " | ") + " |"
    if len(lines) == 1:
        return 1, width, f"{header}\n{separator}"
    body = " |\n| ".join(itertools.islice(lines, 1, None)).replace(delimiter, " | ")
    return len(lines), width, f"{header}\n{separator}\n| {body} |"


def read_rows(text: str, dialect: type[csv.Dialect]) -> list[list[str]]:
    """
    The rows of ``text`` (line breaks already ``\\n``) that hold any value.

    Without a quote or escape character in the text, csv.reader's state
    machine reduces to splitting lines at the delimiter, which str.split
    does six times faster; everything else goes through csv.reader.
    """
    marks = (dialect.quotechar, dialect.escapechar)
    if not any(mark and mark in text for mark in marks):
        lines = text.split("\n")
        # csv.reader refuses fields past its limit; only a line that long
        # can hold one.
        if max(map(len, lines)) <= csv.field_size_limit():
            delimiter = dialect.delimiter
            if dialect.skipinitialspace:
                return [
                    cells
                    for line in lines
                    if any(cells := [c.lstrip(" ") for c in line.split(delimiter)])
                ]
            return list(filter(any, (line.split(delimiter) for line in lines)))
    return list(filter(any, csv.reader(io.StringIO(text), dialect)))


def sniff_dialect(text: str, prefer_tab: bool = False) -> type[csv.Dialect]:
    """
    The CSV dialect of ``text``, judged from its first rows.

    Falls back to the delimiter that splits every sampled line into the same
    number of fields, then to a comma (a tab if ``prefer_tab``).
    """
    sample = text[:SNIFF_SAMPLE_CHARS]
    if len(text) > len(sample) and "\n" in sample:
        sample = sample[: sample.rindex("\n")]
    try:
        dialect = _Sniffer().sniff(sample, delimiters=_DELIMITERS)
    except csv.Error:
        dialect = csv.excel_tab if prefer_tab else csv.excel
        delimiter = _consistent_delimiter(sample)
        if delimiter is None or delimiter == dialect.delimiter:
            return dialect
        return type("SniffedDialect", (dialect,), {"delimiter": delimiter})
    if prefer_tab and dialect.delimiter != "\t" and "\t" in sample:
        return csv.excel_tab
    return dialect


class _Sniffer(csv.Sniffer):
    """
    ``csv.Sniffer`` with its delimiter vote held among the candidates only.

    When no quoted field gives the delimiter away, the standard sniffer
    tallies, line by line, how often each of the 127 ASCII characters occurs,
    and only then keeps the candidates; the tally was most of the time spent
    on a small CSV file. A character's tally never affects another's, so
    tallying the candidates alone picks the same delimiter.
    """

    def sniff(self, sample: str, delimiters: str | None = None) -> type[csv.Dialect]:
        # The standard sniff, returning a dialect class made once per set of
        # answers rather than a new class per call (a fifth of its time on a
        # small file).
        quote, doublequote, delimiter, skipinitialspace = (
            self._guess_quote_and_delimiter(sample, delimiters)
        )
        if not delimiter:
            delimiter, skipinitialspace = self._guess_delimiter(sample, delimiters)
        if not delimiter:
            raise csv.Error("Could not determine delimiter")
        # csv.reader refuses an empty quotechar.
        return _dialect(delimiter, quote or '"', doublequote, skipinitialspace)

    def _guess_quote_and_delimiter(
        self, data: str, delimiters: str | None
    ) -> tuple[str, bool, str | None, bool]:
        # Each of the standard sniffer's four patterns needs a quote
        # character; without one in the sample none can match, and their
        # lazy scans were a third of the time on a large unquoted file.
        if '"' not in data and "'" not in data:
            return "", False, None, False
        # Private to csv.Sniffer and missing from its stubs.
        standard = super()._guess_quote_and_delimiter  # type: ignore[misc]
        found: tuple[str, bool, str | None, bool] = standard(data, delimiters)
        return found

    def _guess_delimiter(self, data: str, delimiters: str | None) -> tuple[str, bool]:
        lines = [line for line in data.split("\n") if line]
        candidates = sorted(set(delimiters or map(chr, range(127))))
        # For each candidate: occurrences in a line -> lines with that many.
        tallies: dict[str, dict[int, int]] = {char: {} for char in candidates}
        found: dict[str, tuple[int, int]] = {}
        chunk = min(10, len(lines))
        read = 0
        while read < len(lines):
            for line in lines[read : read + chunk]:
                for char in candidates:
                    tally = tallies[char]
                    occurrences = line.count(char)
                    tally[occurrences] = tally.get(occurrences, 0) + 1
            read += chunk
            # Each candidate's usual count per line, and by how many lines
            # that count outnumbers all the others.
            modes: dict[str, tuple[int, int]] = {}
            for char, tally in tallies.items():
                if list(tally) == [0]:
                    continue
                usual, agreeing = max(tally.items(), key=lambda item: item[1])
                modes[char] = (usual, 2 * agreeing - sum(tally.values()))
            total = float(min(read, len(lines)))
            consistency = 1.0
            while not found and consistency >= 0.9:
                for char, (usual, margin) in modes.items():
                    if usual > 0 and margin > 0 and margin / total >= consistency:
                        found[char] = (usual, margin)
                consistency -= 0.01
            if len(found) == 1:
                return self._with_spacing(lines, next(iter(found)))
        if not found:
            return ("", False)
        for char in self.preferred:
            if char in found:
                return self._with_spacing(lines, char)
        return self._with_spacing(lines, max(found, key=lambda c: (found[c], c)))

    @staticmethod
    def _with_spacing(lines: list[str], delimiter: str) -> tuple[str, bool]:
        # Spaces after every delimiter in the first line: skip them.
        first = lines[0]
        return (delimiter, first.count(delimiter) == first.count(delimiter + " "))


@cache
def _dialect(
    delimiter: str, quotechar: str, doublequote: bool, skipinitialspace: bool
) -> type[csv.Dialect]:
    attributes = {
        "_name": "sniffed",
        "lineterminator": "\r\n",
        "quoting": csv.QUOTE_MINIMAL,
        "delimiter": delimiter,
        "quotechar": quotechar,
        "doublequote": doublequote,
        "skipinitialspace": skipinitialspace,
    }
    return type("SniffedDialect", (csv.Dialect,), attributes)


def _consistent_delimiter(sample: str) -> str | None:
    lines = [line for line in sample.splitlines() if line.strip()]
    for delimiter in _DELIMITERS:
        counts = {line.count(delimiter) for line in lines}
        if len(counts) == 1 and counts.pop() > 0:
            return delimiter
    return None


def markdown_table(rows: list[list[str]], clean: bool = False) -> str:
    """
    A Markdown table of ``rows``; the first row is the header.

    ``clean`` promises that no cell holds a pipe or a line break; when every
    row is as wide as the widest too, the table is joined in C, row by row,
    without a Python call per row (a CSV file has tens of thousands).
    """
    if not rows:
        return ""
    width = max(map(len, rows))
    separator = "|" + " --- |" * width
    if clean and min(map(len, rows)) == width:
        header = "| " + " | ".join(rows[0]) + " |"
        if len(rows) == 1:
            return header + "\n" + separator
        body = " |\n| ".join(map(" | ".join, itertools.islice(rows, 1, None)))
        return f"{header}\n{separator}\n| {body} |"
    lines = [_markdown_row(rows[0], width), separator]
    lines.extend(_markdown_row(row, width) for row in rows[1:])
    return "\n".join(lines)


def _markdown_row(row: list[str], width: int) -> str:
    # Most rows need no cleaning: three scans of the joined row, in C, decide
    # that, instead of cleaning every cell in Python. Spaces around a value
    # are harmless in a Markdown cell; pipes and line breaks are not.
    joined = "".join(row)
    if "|" not in joined and "\n" not in joined and "\r" not in joined:
        cells = row
    else:
        cells = [_markdown_cell(cell) for cell in row]
    if len(cells) < width:
        cells = [*cells, *([""] * (width - len(cells)))]
    return "| " + " | ".join(cells) + " |"


def _markdown_cell(cell: str) -> str:
    # A pipe would end the cell and a line break the row.
    return " ".join(cell.split()).replace("|", "\\|")
