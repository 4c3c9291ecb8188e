"""Markdown tables of Office documents: clean rows skip the per-cell cleaning."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from docmill.extract.ooxml import markdown_table

_CELL = st.text(alphabet=["a", "é", " ", "|", "\t", "\n", "\xa0", "\u3000", "\x00"])


def _cleaned(cell: str) -> str:
    # The rule: pipes escaped, whitespace runs folded to one space, trimmed.
    return " ".join(cell.replace("|", "\\|").split())


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(st.lists(_CELL, max_size=4), max_size=5))
def test_every_cell_reads_as_cleaned(rows: list[list[str]]) -> None:
    kept = [row for row in rows if row]
    width = max((len(row) for row in kept), default=0)
    expected = []
    for index, row in enumerate(kept):
        cells = [_cleaned(cell) for cell in row] + [""] * (width - len(row))
        expected.append("| " + " | ".join(cells) + " |")
        if index == 0:
            expected.append("|" + " --- |" * width)
    assert markdown_table(rows) == "\n".join(expected)


def test_a_space_at_a_row_edge_is_trimmed_when_the_table_is_judged_whole() -> None:
    # Only the edge space marks these tables as unclean; a whole-table check
    # that joined rows without a separator would miss it.
    assert markdown_table([["a "], ["b"]]) == "| a |\n| --- |\n| b |"
    assert markdown_table([["a"], [" b", "c"]]) == (
        "| a |  |\n| --- | --- |\n| b | c |"
    )
