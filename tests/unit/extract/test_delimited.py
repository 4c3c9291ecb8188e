from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from docmill.extract import mime
from docmill.extract.base import ExtractContext, ExtractionResult
from docmill.extract.delimited import (
    _even_table,
    _plain_table,
    _Sniffer,
    extract_delimited,
    markdown_table,
    read_rows,
    sniff_dialect,
)


def _extract(data: bytes, media_type: str = mime.CSV) -> ExtractionResult:
    ctx = ExtractContext()
    ctx.media_type = media_type
    return extract_delimited(data, ctx)


def test_text_keeps_the_rows_as_written() -> None:
    data = b'A,A,A,A,A\r\nA,A,A,"A,A",A\r\n'
    assert _extract(data).text == 'A,A,A,A,A\nA,A,A,"A,A",A\n'


def test_metadata_counts_rows_and_columns_and_names_the_delimiter() -> None:
    data = "Name;City\nAnna;Zürich\n\nBen;Genève\n".encode("cp1252")
    assert _extract(data).metadata == {
        "encoding": "cp1252",
        "rows": 3,
        "columns": 2,
        "delimiter": ";",
    }


def test_markdown_is_a_table_with_the_first_row_as_header() -> None:
    data = b'Team,Cups\nBlues,1\n"Maple | Leafs",13\n'
    assert _extract(data).markdown == (
        "| Team | Cups |\n| --- | --- |\n| Blues | 1 |\n| Maple \\| Leafs | 13 |"
    )


def test_short_rows_are_padded_in_the_table() -> None:
    assert _extract(b"a,b,c\n1,2\n").markdown == (
        "| a | b | c |\n| --- | --- | --- |\n| 1 | 2 |  |"
    )


def test_utf16_csv_with_a_mark_reads() -> None:
    data = "Team,Location\nMaple Leafs,TOR\n".encode("utf-16")
    result = _extract(data)
    assert (result.metadata["rows"], result.text) == (
        2,
        "Team,Location\nMaple Leafs,TOR\n",
    )


def test_tsv_splits_on_tabs() -> None:
    result = _extract(b"a\tb, c\n1\t2, 3\n", mime.TSV)
    assert (result.mime_type, result.metadata["delimiter"]) == (mime.TSV, "\t")


def test_a_single_column_falls_back_to_a_comma() -> None:
    assert _extract(b"one\ntwo\nthree\n").metadata["delimiter"] == ","


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(
        st.lists(
            st.sampled_from(["x", "1", "a b", "", "q,r", "s;t", "u|v"]), max_size=6
        ),
        max_size=30,
    ),
    delimiter=st.sampled_from(",;\t|"),
    noise=st.text(alphabet="ab ,;\t|\"'\n:", max_size=80),
)
def test_the_delimiter_vote_matches_the_standard_sniffer(
    rows: list[list[str]], delimiter: str, noise: str
) -> None:
    # docmill's sniffer tallies only the candidate delimiters; the standard
    # one tallies every ASCII character and must reach the same verdict.
    data = "\n".join(delimiter.join(row) for row in rows) + noise
    for candidates in (",;\t|", None):
        expected = csv.Sniffer()._guess_delimiter(data, candidates)  # type: ignore[attr-defined]
        found = _Sniffer()._guess_delimiter(data, candidates)
        assert (found[0], bool(found[1])) == (expected[0], bool(expected[1]))


@pytest.mark.parametrize(
    "data",
    [
        b"a,b,c\n1,2,3\n4,5,6\n",
        b"a,b,c\n1,2\n4,5,6,7\n",
        b'a,b\n"x|y",2\n"multi\nline",3\n',
        b"a;b\nx|y;2\n",
    ],
)
def test_the_joined_table_equals_the_row_by_row_one(data: bytes) -> None:
    result = _extract(data)
    rows = list(
        filter(any, csv.reader(io.StringIO(result.text), sniff_dialect(result.text)))
    )
    assert result.markdown == markdown_table(rows)


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(alphabet="ab ,;\t|\n\x85\u2028é", max_size=80),
    dialect=st.sampled_from(
        [
            csv.excel,
            csv.excel_tab,
            type("Spaced", (csv.excel,), {"delimiter": ";", "skipinitialspace": True}),
        ]
    ),
)
def test_rows_without_quotes_are_split_as_csv_reader_splits_them(
    text: str, dialect: type[csv.Dialect]
) -> None:
    expected = list(filter(any, csv.reader(io.StringIO(text), dialect)))
    assert read_rows(text, dialect) == expected


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(alphabet='ab ,;\t|\n"\x85\u2028é', max_size=80),
    dialect=st.sampled_from(
        [
            csv.excel,
            csv.excel_tab,
            type("Semi", (csv.excel,), {"delimiter": ";"}),
            type("Spaced", (csv.excel,), {"delimiter": ";", "skipinitialspace": True}),
        ]
    ),
)
def test_the_plain_table_equals_the_one_built_from_rows(
    text: str, dialect: type[csv.Dialect]
) -> None:
    # The shortcut must give what the general road gives, whenever it answers.
    plain = _plain_table(text, dialect)
    if plain is not None:
        rows = read_rows(text, dialect)
        expected = markdown_table(rows, clean=True)
        assert plain == (len(rows), max(map(len, rows)), expected)


def test_the_plain_table_takes_uniform_rows_and_leaves_ragged_ones() -> None:
    assert _plain_table("a,b\n,\n1,2\n", csv.excel) == (
        2,
        2,
        "| a | b |\n| --- | --- |\n| 1 | 2 |",
    )
    assert _plain_table("a,b\n1\n", csv.excel) is None
    assert _plain_table('a,b\n"1",2\n', csv.excel) is None


def test_a_field_past_csv_limit_leaves_the_rows_unsplit() -> None:
    # The split road must refuse what csv.reader refuses, not read it.
    field = "x" * (csv.field_size_limit() + 1)
    result = _extract(f"a,b\n{field},2\n".encode())
    assert result.markdown is None
    assert result.warnings == [
        f"rows not split: field larger than field limit ({csv.field_size_limit()})"
    ]


@settings(max_examples=200, deadline=None)
@given(data=st.text(alphabet="ab1 ,;\t|\n\"'", max_size=60))
def test_the_quote_vote_matches_the_standard_sniffer(data: str) -> None:
    # docmill's sniffer skips the quote patterns when no quote character is
    # in the sample; its verdict must stay the standard one either way.
    standard = csv.Sniffer()._guess_quote_and_delimiter(data, ",;\t|")  # type: ignore[attr-defined]
    quote, doublequote, delimiter, space = standard
    found = _Sniffer()._guess_quote_and_delimiter(data, ",;\t|")
    assert found == (quote, doublequote, delimiter, bool(space))


@settings(max_examples=500, deadline=None)
@given(
    text=st.text(alphabet="ab ,;\t|\n\x85é字", max_size=80),
    dialect=st.sampled_from(
        [csv.excel, csv.excel_tab, type("Semi", (csv.excel,), {"delimiter": ";"})]
    ),
)
def test_the_even_table_equals_the_plain_table(
    text: str, dialect: type[csv.Dialect]
) -> None:
    # The whole-text road must answer as the line-by-line one, whenever it
    # answers.
    even = _even_table(text, dialect, text.encode())
    if even is not None:
        assert even == _plain_table(text, dialect)


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.text("aé字", min_size=1, max_size=4), st.text("b字", max_size=3)),
        min_size=2,
        max_size=12,
    ),
    size=st.integers(1, 9),
    ends=st.booleans(),
)
def test_the_even_table_in_small_slices_is_the_table_in_one(
    rows: list[tuple[str, str]], size: int, ends: bool
) -> None:
    # The slices are 32 KiB; small ones cut the rows, and the characters of
    # several bytes, at every place.
    text = "\n".join(f"{left},{right}" for left, right in rows) + "\n" * ends
    whole = _even_table(text, csv.excel, text.encode())
    sliced = _even_table_in_slices(text, size)
    assert whole is not None
    assert sliced == whole == _plain_table(text, csv.excel)


@pytest.mark.parametrize(
    ("text", "rows"),
    [
        pytest.param("a,b\n1,2\n3,4\n", 3, id="final-line-feed"),
        pytest.param("a,b\n1,2\n3,4", 3, id="no-final-line-feed"),
        pytest.param("a,b\n", 1, id="header-only"),
        pytest.param("a;b,c\n1;2,3\n", 2, id="the-other-mark-is-a-value"),
    ],
)
def test_the_even_table_takes_rows_of_equal_width(text: str, rows: int) -> None:
    even = _even_table(text, csv.excel, text.encode())
    assert even is not None
    assert even == _plain_table(text, csv.excel)
    assert even[0] == rows


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("a,b\n,\n1,2\n", id="delimiters-alone"),
        pytest.param(",\na,b\n", id="first-line-delimiters-alone"),
        pytest.param("a,b\n1,2\n,", id="last-line-delimiters-alone"),
        pytest.param("a,b\n\n1,2\n", id="empty-line"),
        pytest.param("a,b\n1,2\n\n", id="two-final-line-feeds"),
        pytest.param("a,b\n1,2,3\n", id="ragged"),
        pytest.param("a\nb\n", id="one-column"),
        pytest.param("a,b", id="one-line"),
        pytest.param('a,b\n"1",2\n', id="quoted"),
    ],
)
def test_the_even_table_leaves_the_rest_to_the_plain_table(text: str) -> None:
    assert _even_table(text, csv.excel, text.encode()) is None


def test_the_even_table_leaves_a_line_past_csv_limit() -> None:
    long = "x" * (csv.field_size_limit() + 1)
    text = f"a,b\n{long},2\n" + "1,2\n" * 10
    assert _even_table(text, csv.excel, text.encode()) is None


def test_a_large_even_file_reads_as_the_plain_table_reads_it() -> None:
    # Past the field limit the long-line windows are looked at, and the
    # shortcut still answers for short lines.
    body = "".join(f"{i},é{i},x y\r\n" for i in range(40_000))
    result = _extract(f"id,name,note\r\n{body}".encode())
    text = f"id,name,note\n{body}".replace("\r\n", "\n")
    assert result.text == text
    assert result.markdown == _plain_table(text, csv.excel)[2]  # type: ignore[index]
    assert result.metadata["rows"] == 40_001
    assert _even_table(text, csv.excel, text.encode()) is not None


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet="ab ,\n\x85é字", max_size=80), size=st.integers(1, 5))
def test_the_even_table_made_in_slices_is_the_plain_table(text: str, size: int) -> None:
    # The slices are 32 KiB; small ones cut rows, cells and marks.
    even = _even_table_in_slices(text, size)
    if even is not None:
        assert even == _plain_table(text, csv.excel)


def _even_table_in_slices(text: str, size: int) -> tuple[int, int, str] | None:
    """``_even_table`` of ``text`` made ``size`` bytes at a time."""
    from docmill.extract import delimited

    original = delimited._TABLE_SLICE
    delimited._TABLE_SLICE = size
    try:
        return _even_table(text, csv.excel, text.encode())
    finally:
        delimited._TABLE_SLICE = original
