"""
Normalisers: a raw string from a document becomes a typed value.

Each takes the matched text and the rule, and returns the JSON value stored
in ``fields`` or raises ``ValueError`` with a sentence for ``fields_errors``.
Decimals come back as strings (``"1234.50"``) so that no digit is lost on
the way through JSON, spreadsheets or a float.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from docmill.parsing.rules import FieldType

_CURRENCY = re.compile(
    r"[€$£¥₹₽₩¤]|\b(?:EUR|USD|GBP|CHF|JPY|CAD|AUD|SEK|NOK|DKK|PLN|CZK|INR)\b",
    re.IGNORECASE,
)
# Thin, narrow and ordinary no-break spaces and apostrophes group thousands
# in French, Swiss and other conventions.
_GROUPING = re.compile(r"[\s\u00a0\u202f\u2009'\u2019]")
# Grouping marks count only before exactly three digits, so "2 10.00" (a
# quantity, then a price) is not read as 210.00.
NUMBER_TOKEN = (
    r"[-\u2212(]?(?:[€$£¥]\s?)?"
    r"(?:\d{1,3}(?:[ \u00a0\u202f'\u2019.,]\d{3})+(?:[.,]\d+)?|\d+(?:[.,]\d+)?)"
)
DATE_TOKEN = (
    r"(?<!\d)(?:\d{4}[./-]\d{1,2}[./-]\d{1,2}|\d{1,2}[./-]\d{1,2}[./-]\d{2,4})(?!\d)"
    r"|\d{1,2}\.?\s+[A-Za-z]{3,9}\.?,?\s+\d{4}|[A-Za-z]{3,9}\.?\s+\d{1,2},?\s+\d{4}"
    r"|\d{1,2}-[A-Za-z]{3}-\d{2,4}"
)
EMAIL_TOKEN = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"
IBAN_TOKEN = r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{1,4}){3,8}\b"

# The pattern after_label uses to pick a typed value out of the rest of a
# line, so "Total: 1,234.50 EUR (incl. VAT)" gives the amount alone.
TOKENS: dict[str, str] = {
    "integer": NUMBER_TOKEN,
    "decimal": NUMBER_TOKEN,
    "date": DATE_TOKEN,
    "email": EMAIL_TOKEN,
    "iban": IBAN_TOKEN,
}

_MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ],
        start=1,
    )
    for name in names
}


def normalise(raw: str, type_: FieldType, rule: Any) -> Any:
    """
    The typed value of ``raw``.

    Raises:
        ValueError: ``raw`` is not a value of ``type_``.
    """
    if type_ == "string":
        return " ".join(raw.split())
    if type_ == "decimal":
        return str(parse_decimal(raw, rule.decimal_separator))
    if type_ == "integer":
        value = parse_decimal(raw, rule.decimal_separator)
        if value != value.to_integral_value():
            raise ValueError(f"{raw!r} is not a whole number")
        return int(value)
    if type_ == "date":
        return parse_date(raw, rule.date_order).isoformat()
    if type_ == "email":
        return parse_email(raw)
    return parse_iban(raw)


def parse_decimal(raw: str, separator: str = "auto") -> Decimal:
    """
    A number written with any common grouping and decimal marks.

    ``1,234.50``, ``1.234,50``, ``1 234,50``, ``1'234.50``, ``€ 99``,
    ``(12.00)`` and ``-12,00`` all read as expected. With ``separator`` left
    at ``auto``, a lone mark followed by exactly three digits (``1,234``) is
    taken as grouping, since invoices rarely give three decimal places.
    """
    text = _CURRENCY.sub("", raw).strip()
    negative = text.startswith(("-", "\u2212", "(")) or text.endswith(("-", ")"))
    text = _GROUPING.sub("", text.strip("-\u2212()+ "))
    if not re.fullmatch(r"\d[\d.,]*", text) or text.endswith((".", ",")):
        raise ValueError(f"{raw!r} is not a number")
    decimal_mark = separator if separator != "auto" else _guess_decimal_mark(text)
    if decimal_mark is not None and decimal_mark not in text:
        decimal_mark = None
    if decimal_mark is None:
        integer, fraction = text, ""
    else:
        integer, _, fraction = text.rpartition(decimal_mark)
        if not integer or not fraction.isdigit():
            raise ValueError(f"{raw!r} is not a number")
    grouping = integer.replace(".", "").replace(",", "")
    if not grouping.isdigit():
        raise ValueError(f"{raw!r} is not a number")
    try:
        value = Decimal(f"{grouping}.{fraction}" if fraction else grouping)
    except InvalidOperation as exc:  # pragma: no cover - guarded by the checks
        raise ValueError(f"{raw!r} is not a number") from exc
    return -value if negative else value


def _guess_decimal_mark(text: str) -> str | None:
    marks = [c for c in text if c in ".,"]
    if not marks:
        return None
    last = marks[-1]
    if len(set(marks)) == 2:
        return last
    if len(marks) > 1:
        return None  # 1,234,567 or 1.234.567: grouping only
    fraction = text.rpartition(last)[2]
    return None if len(fraction) == 3 else last


def parse_date(raw: str, order: str = "DMY") -> date:
    """
    A calendar date in any of the usual orders, month names included.

    A four-digit first part is always year-month-day; a part above 12 settles
    which is the day; otherwise ``order`` decides.
    """
    text = raw.strip().rstrip(".,")
    named = re.fullmatch(
        r"(\d{1,2})\.?[\s-]+([A-Za-z]{3,9})\.?,?[\s-]+(\d{2,4})"
        r"|([A-Za-z]{3,9})\.?\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})",
        text,
    )
    try:
        if named:
            if named[1]:
                day, month_name, year = int(named[1]), named[2], int(named[3])
            else:
                month_name, day, year = named[4], int(named[5]), int(named[6])
            month = _MONTHS.get(month_name.casefold().rstrip("."))
            if month is None:
                raise ValueError(f"{raw!r} names no month")
            return date(_full_year(year), month, day)
        parts = re.fullmatch(r"(\d{1,4})[./-](\d{1,2})[./-](\d{1,4})", text)
        if not parts:
            raise ValueError(f"{raw!r} is not a date")
        a, b, c = (int(part) for part in parts.groups())
        if len(parts[1]) == 4 or (order == "YMD" and len(parts[3]) != 4):
            return date(_full_year(a), b, c)
        if a > 12 or (order == "DMY" and b <= 12):
            return date(_full_year(c), b, a)
        return date(_full_year(c), a, b)
    except ValueError as exc:
        if "is not a date" in str(exc) or "names no month" in str(exc):
            raise
        raise ValueError(f"{raw!r} is not a valid date: {exc}") from None


def _full_year(year: int) -> int:
    return year + 2000 if year < 100 else year


def parse_email(raw: str) -> str:
    text = raw.strip().strip("<>").strip()
    if not re.fullmatch(EMAIL_TOKEN, text):
        raise ValueError(f"{raw!r} is not an e-mail address")
    local, _, domain = text.rpartition("@")
    return f"{local}@{domain.casefold()}"


def parse_iban(raw: str) -> str:
    """An IBAN without spaces, upper case, with its check digits verified."""
    text = re.sub(r"[\s-]", "", raw).upper()
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}", text):
        raise ValueError(f"{raw!r} is not an IBAN")
    digits = "".join(str(int(c, 36)) for c in text[4:] + text[:4])
    if int(digits) % 97 != 1:
        raise ValueError(f"{raw!r} fails the IBAN check digits")
    return text
