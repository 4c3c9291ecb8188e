"""Normalisers: numbers, dates, e-mail addresses and IBANs as invoices write them."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from docmill.parsing.normalise import parse_date, parse_decimal, parse_email, parse_iban


@pytest.mark.parametrize(
    ("raw", "separator", "expected"),
    [
        pytest.param("1,234.50", "auto", "1234.50", id="us"),
        pytest.param("1.234,50", "auto", "1234.50", id="european"),
        pytest.param("1 234,50", "auto", "1234.50", id="french-space"),
        pytest.param("1\u202f234,50", "auto", "1234.50", id="narrow-nbsp"),
        pytest.param("1'234.50", "auto", "1234.50", id="swiss"),
        pytest.param("1.234.567,89", "auto", "1234567.89", id="two-groups"),
        pytest.param("1,234", "auto", "1234", id="lone-group-is-thousands"),
        pytest.param("12,5", "auto", "12.5", id="decimal-comma"),
        pytest.param("1,234", ",", "1.234", id="forced-comma"),
        pytest.param("$4,475.50", "auto", "4475.50", id="dollar"),
        pytest.param("EUR 99", "auto", "99", id="currency-code"),
        pytest.param("(12.00)", "auto", "-12.00", id="parenthesised"),
        pytest.param("-12,00", "auto", "-12.00", id="minus"),
        pytest.param("3", ",", "3", id="no-fraction"),
    ],
)
def test_parse_decimal(raw: str, separator: str, expected: str) -> None:
    assert Decimal(expected) == parse_decimal(raw, separator)


@pytest.mark.parametrize("raw", ["abc", "1,2,3.4.5x", "", "12."])
def test_parse_decimal_refuses_non_numbers(raw: str) -> None:
    with pytest.raises(ValueError, match="is not a number"):
        parse_decimal(raw)


@pytest.mark.parametrize(
    ("raw", "order", "expected"),
    [
        pytest.param("05/03/2024", "DMY", date(2024, 3, 5), id="dmy"),
        pytest.param("05/03/2024", "MDY", date(2024, 5, 3), id="mdy"),
        pytest.param("2024/03/07", "YMD", date(2024, 3, 7), id="ymd"),
        pytest.param("24-03-07", "YMD", date(2024, 3, 7), id="ymd-short-year"),
        pytest.param("03/15/2024", "DMY", date(2024, 3, 15), id="day-over-12"),
        pytest.param("17.03.2024", "DMY", date(2024, 3, 17), id="dots"),
        pytest.param("5 March 2024", "MDY", date(2024, 3, 5), id="day-month-name"),
        pytest.param("March 5, 2024", "DMY", date(2024, 3, 5), id="month-name-day"),
        pytest.param("05-Mar-24", "DMY", date(2024, 3, 5), id="abbreviated"),
    ],
)
def test_parse_date(raw: str, order: str, expected: date) -> None:
    assert expected == parse_date(raw, order)


def test_parse_date_refuses_impossible_dates() -> None:
    with pytest.raises(ValueError, match="is not a valid date"):
        parse_date("31/02/2024")


def test_parse_iban_compacts_and_checks_digits() -> None:
    assert parse_iban("de89 3704 0044 0532 0130 00") == "DE89370400440532013000"
    with pytest.raises(ValueError, match="check digits"):
        parse_iban("DE89 3704 0044 0532 0130 01")


def test_parse_email_lowercases_the_domain_only() -> None:
    assert parse_email("<Billing@Globex.EXAMPLE>") == "Billing@globex.example"
