"""
Invoices and receipts the parsing tests generate, with their known fields.

Each layout is a different supplier: its own file format, label wording,
thousands convention and date order, and the parser (rules) written for it.
``expected`` is what that parser must return, value for value.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any


@dataclass
class Sample:
    filename: str
    data: bytes
    rules: dict[str, Any]
    expected: dict[str, Any]
    errors: dict[str, Any] = field(default_factory=dict)


ITEMS = [
    ("Widget, large", 3, Decimal("1250.00")),
    ("Gadget", 12, Decimal("4.75")),
    ("Service hours", 7, Decimal("95.50")),
]


def _items(count: int) -> list[tuple[str, int, Decimal]]:
    base = ITEMS * (count // len(ITEMS) + 1)
    return [
        (f"{name} #{i + 1}", qty, price)
        for i, (name, qty, price) in enumerate(base[:count])
    ]


def _us(value: Decimal) -> str:
    return f"{value:,.2f}"


def _eu(value: Decimal) -> str:
    return f"{value:,.2f}".replace(",", "_").replace(".", ",").replace("_", ".")


def _fr(value: Decimal) -> str:
    return f"{value:,.2f}".replace(",", " ").replace(".", ",")


def _rows(items: list[tuple[str, int, Decimal]]) -> list[dict[str, Any]]:
    return [
        {
            "description": name,
            "qty": qty,
            "unit_price": str(price),
            "amount": str(price * qty),
        }
        for name, qty, price in items
    ]


TABLE_RULE = {
    "rule": "table",
    "columns": [
        "Description",
        {"header": "Qty", "type": "integer"},
        {"header": "Unit Price", "type": "decimal"},
        {"header": "Amount", "type": "decimal"},
    ],
    "stop_at": ["Subtotal", "Total"],
}


def pdf_invoice(item_count: int = 60) -> Sample:
    """
    ACME's PDF: US thousands, day-first dates, a line-item table that runs
    over pages with its header repeated, and a footer on every page.
    """
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    items = _items(item_count)
    total = sum((price * qty for _n, qty, price in items), Decimal(0))
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4)
    pdf.setTitle("ACME invoice INV-2024-0042")
    _width, height = A4
    columns = [
        (50, "Description", "left"),
        (330, "Qty", "right"),
        (440, "Unit Price", "right"),
        (540, "Amount", "right"),
    ]

    def header(y: float) -> float:
        pdf.setFont("Helvetica-Bold", 10)
        for x, title, align in columns:
            (pdf.drawRightString if align == "right" else pdf.drawString)(x, y, title)
        pdf.setFont("Helvetica", 10)
        return y - 16

    def footer(page: int) -> None:
        pdf.setFont("Helvetica", 8)
        pdf.drawString(50, 30, f"ACME Corp, page {page}")
        pdf.setFont("Helvetica", 10)

    pdf.setFont("Helvetica-Bold", 16)
    pdf.drawString(50, height - 60, "ACME Corp - INVOICE")
    pdf.setFont("Helvetica", 10)
    lines = [
        "Invoice No: INV-2024-0042",
        "Date: 05/03/2024",
        "Bill to: Globex Ltd",
        "Contact: Billing@Globex.EXAMPLE",
        "IBAN: DE89 3704 0044 0532 0130 00",
    ]
    y = height - 90
    for line in lines:
        pdf.drawString(50, y, line)
        y -= 14
    y = header(y - 20)
    page = 1
    for name, qty, price in items:
        if y < 70:
            footer(page)
            pdf.showPage()
            page += 1
            y = header(height - 60)
        pdf.drawString(50, y, name)
        pdf.drawRightString(330, y, str(qty))
        pdf.drawRightString(440, y, _us(price))
        pdf.drawRightString(540, y, _us(price * qty))
        y -= 14
    pdf.drawString(50, y - 10, "Total:")
    pdf.drawRightString(540, y - 10, f"${_us(total)}")
    footer(page)
    pdf.save()
    rules = {
        "name": "acme-invoices",
        "fields": {
            "invoice_number": {
                "rule": "after_label",
                "label": "Invoice No",
                "required": True,
            },
            "invoice_date": {
                "rule": "after_label",
                "label": "Date",
                "type": "date",
                "date_order": "DMY",
            },
            "customer": {"rule": "between", "start": "Bill to:", "end": "Contact"},
            "email": {"rule": "after_label", "label": "Contact", "type": "email"},
            "iban": {
                "rule": "regex",
                "pattern": r"IBAN:\s*(?P<value>[A-Z]{2}[\d ]+)",
                "type": "iban",
            },
            "total": {
                "rule": "after_label",
                "label": "Total",
                "type": "decimal",
                "occurrence": "last",
                "pages": "last",
                "required": True,
            },
            "line_items": TABLE_RULE,
            "pages": {"rule": "metadata", "key": "page_count", "type": "integer"},
            "supplier": {"rule": "constant", "value": "ACME Corp"},
        },
    }
    expected = {
        "invoice_number": "INV-2024-0042",
        "invoice_date": "2024-03-05",
        "customer": "Globex Ltd",
        "email": "Billing@globex.example",
        "iban": "DE89370400440532013000",
        "total": str(total),
        "line_items": _rows(items),
        "pages": page,
        "supplier": "ACME Corp",
    }
    return Sample("acme-0042.pdf", buffer.getvalue(), rules, expected)


def docx_invoice() -> Sample:
    """Bauer's DOCX: labels above their values, 1.234,50 and month-first dates."""
    import docx

    items = _items(4)
    total = sum((price * qty for _n, qty, price in items), Decimal(0))
    document = docx.Document()
    document.add_heading("Bauer GmbH", level=1)
    document.add_paragraph("INVOICE NUMBER")
    document.add_paragraph("B-7781")
    document.add_paragraph("Invoice date  03/15/2024")
    table = document.add_table(rows=1, cols=4)
    for cell, title in zip(
        table.rows[0].cells, ["Description", "Qty", "Unit Price", "Amount"], strict=True
    ):
        cell.text = title
    for name, qty, price in items:
        cells = table.add_row().cells
        for cell, value in zip(
            cells, [name, str(qty), _eu(price), _eu(price * qty)], strict=True
        ):
            cell.text = value
    document.add_paragraph(f"Total amount: {_eu(total)} EUR")
    buffer = io.BytesIO()
    document.save(buffer)
    rules = {
        "name": "bauer-invoices",
        "fields": {
            "invoice_number": {
                "rule": "after_label",
                "label": "invoice number",
                "required": True,
            },
            "invoice_date": {
                "rule": "after_label",
                "label": "Invoice date",
                "type": "date",
                "date_order": "MDY",
            },
            "total": {
                "rule": "after_label",
                "label": ["Total amount", "Total"],
                "type": "decimal",
                "decimal_separator": ",",
            },
            "line_items": {**TABLE_RULE, "decimal_separator": ","},
        },
    }
    expected = {
        "invoice_number": "B-7781",
        "invoice_date": "2024-03-15",
        "total": str(total),
        "line_items": _rows(items),
    }
    return Sample("bauer-7781.docx", buffer.getvalue(), rules, expected)


def xlsx_invoice() -> Sample:
    """Chen's XLSX: label and value in neighbouring cells, year-first dates."""
    import openpyxl

    items = _items(5)
    total = sum((price * qty for _n, qty, price in items), Decimal(0))
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Invoice"
    sheet.append(["Invoice #", "C-0099"])
    sheet.append(["Issued", "2024/03/07"])
    sheet.append([])
    sheet.append(["Description", "Qty", "Unit Price", "Amount"])
    for name, qty, price in items:
        sheet.append([name, qty, _us(price), _us(price * qty)])
    sheet.append(["Total", None, None, _us(total)])
    buffer = io.BytesIO()
    workbook.save(buffer)
    rules = {
        "name": "chen-invoices",
        "fields": {
            "invoice_number": {
                "rule": "after_label",
                "label": "Invoice #",
                "required": True,
            },
            "issued": {
                "rule": "after_label",
                "label": "Issued",
                "type": "date",
                "date_order": "YMD",
            },
            "total": {
                "rule": "regex",
                "pattern": r"^Total\t+(?P<value>[\d,.]+)$",
                "type": "decimal",
            },
            "line_items": TABLE_RULE,
            "author": {"rule": "metadata", "key": "metadata.author"},
        },
    }
    expected = {
        "invoice_number": "C-0099",
        "issued": "2024-03-07",
        "total": str(total),
        "line_items": _rows(items),
        "author": "openpyxl",
    }
    return Sample("chen-0099.xlsx", buffer.getvalue(), rules, expected)


def html_receipt(with_number: bool = True) -> Sample:
    """Dupont's HTML receipt: 1 234,50 with spaces, day-first dates with dots."""
    items = _items(2)
    total = sum((price * qty for _n, qty, price in items), Decimal(0))
    rows = "".join(
        f"<tr><td>{name}</td><td>{qty}</td>"
        f"<td>{_fr(price)}</td><td>{_fr(price * qty)}</td></tr>"
        for name, qty, price in items
    )
    number = "<p>Receipt no. R-551</p>" if with_number else ""
    html = (
        "<html><head><title>Dupont SARL</title></head><body>"
        f"<h1>Dupont SARL</h1>{number}<p>Date : 17.03.2024</p>"
        "<table><tr><th>Description</th><th>Qty</th>"
        "<th>Unit price</th><th>Amount</th></tr>"
        f"{rows}</table><p>TOTAL : {_fr(total)} €</p>"
        "<p>Questions? compta@dupont.example</p></body></html>"
    )
    rules = {
        "name": "dupont-receipts",
        "fields": {
            "receipt_number": {
                "rule": "regex",
                "pattern": r"Receipt no\.?\s*(?P<value>R-\d+)",
                "required": True,
            },
            "date": {"rule": "after_label", "label": "Date", "type": "date"},
            "total": {"rule": "after_label", "label": "total", "type": "decimal"},
            "line_items": TABLE_RULE,
            "email": {
                "rule": "regex",
                "pattern": r"(?P<value>\S+@\S+)",
                "type": "email",
            },
            "title": {"rule": "metadata", "key": "metadata.title"},
        },
    }
    expected = {
        "receipt_number": "R-551" if with_number else None,
        "date": "2024-03-17",
        "total": str(total),
        "line_items": _rows(items),
        "email": "compta@dupont.example",
        "title": "Dupont SARL",
    }
    errors = {}
    if not with_number:
        errors = {
            "receipt_number": {
                "code": "missing",
                "message": "required field 'receipt_number' was not found",
            }
        }
    name = "dupont-551.html" if with_number else "dupont-no-number.html"
    return Sample(name, html.encode(), rules, expected, errors)
