"""CSV export cells: text a spreadsheet would run as a formula is made inert."""

from __future__ import annotations

from typing import Any

import pytest

from docmill.api.parsers import _inert_cell


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        pytest.param("=1+2", "'=1+2", id="equals"),
        pytest.param("+1+2", "'+1+2", id="plus"),
        pytest.param("-2+3", "'-2+3", id="minus"),
        pytest.param("@SUM(A1)", "'@SUM(A1)", id="at"),
        pytest.param("\t=1", "'\t=1", id="tab"),
        pytest.param("\r=1", "'\r=1", id="carriage-return"),
        pytest.param("-1e5+A1", "'-1e5+A1", id="number-then-formula"),
        pytest.param(["=x"], '["=x"]', id="json-array"),
        pytest.param("a=b", "a=b", id="equals-inside"),
        pytest.param("-12.50", "-12.50", id="negative-decimal-text"),
        pytest.param("-12,50", "-12,50", id="comma-decimal-text"),
        pytest.param("+3", "+3", id="signed-integer-text"),
        pytest.param(-5, "-5", id="negative-number"),
        pytest.param(-1.5e-7, "-1.5e-07", id="negative-float"),
        pytest.param(None, "", id="none"),
    ],
)
def test_cell(value: Any, cell: str) -> None:
    assert _inert_cell(value) == cell
