"""
The generated half of the extraction bench: documents of known content.

The shared corpus is many small, odd files, so per-file overhead dominates
its timings. These files are larger and regular (multi-page PDFs, long
DOCX, wide workbooks, decks, big text files), so they measure throughput.
Every file carries two sentinel phrases, one near the start and one at the
end, and PDFs a known page count: the same facts the corpus uses, so a tool
that skips the end of a document fails it.

The set is deterministic for a given profile and is written once into
``bench/generated/<profile>/`` with a ``manifest.json``.
"""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path
from typing import Any

# Bump when the generated content changes, so stale sets are rebuilt.
GENERATOR_VERSION = 2

# Files per format: quick keeps the whole bench to a few minutes.
PROFILES = {
    "quick": {
        "pdf": 24,
        "docx": 16,
        "xlsx": 12,
        "pptx": 12,
        "txt": 8,
        "csv": 8,
        "md": 8,
        "html": 8,
        "json": 8,
        "xml": 8,
    },
    "full": {
        "pdf": 100,
        "docx": 60,
        "xlsx": 50,
        "pptx": 40,
        "txt": 30,
        "csv": 30,
        "md": 30,
        "html": 30,
        "json": 30,
        "xml": 30,
    },
}

_VOCABULARY = (
    "ledger invoice quarterly river harbour mountain signal archive velocity "
    "contract tenant dossier façade naïve café Zürich Ångström résumé coöperate "
    "theorem lattice protein cadence ventilate ordinance turbine granary "
    "meridian solstice parchment"
)
_WORDS = _VOCABULARY.split()


def _sentence(rng: random.Random, words: int = 14) -> str:
    text = " ".join(rng.choice(_WORDS) for _ in range(words))
    return text[0].upper() + text[1:] + "."


def _paragraph(rng: random.Random, sentences: int = 6) -> str:
    return " ".join(_sentence(rng) for _ in range(sentences))


def _sentinels(index: int, fmt: str) -> tuple[str, str]:
    return (
        f"Sentinel {fmt} {index} opening marker",
        f"Sentinel {fmt} {index} closing marker",
    )


def _pdf(path: Path, rng: random.Random, first: str, last: str) -> dict[str, Any]:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    pages = rng.randint(3, 24)
    sheet = canvas.Canvas(str(path), pagesize=A4)
    for page in range(pages):
        lines = sheet.beginText(56, 790)
        lines.setFont("Helvetica", 10)
        if page == 0:
            lines.textLine(first)
        for _ in range(52):
            lines.textLine(_sentence(rng, 12))
        if page == pages - 1:
            lines.textLine(last)
        sheet.drawText(lines)
        sheet.showPage()
    sheet.save()
    return {"pages": pages}


def _docx(path: Path, rng: random.Random, first: str, last: str) -> dict[str, Any]:
    import docx

    document = docx.Document()
    document.add_heading(first, level=1)
    for section in range(rng.randint(4, 30)):
        document.add_heading(f"Section {section + 1}", level=2)
        for _ in range(8):
            document.add_paragraph(_paragraph(rng))
        if section % 5 == 0:
            table = document.add_table(rows=6, cols=4)
            for cell in table._cells:
                cell.text = rng.choice(_WORDS)
    document.add_paragraph(last)
    document.save(str(path))
    return {}


def _xlsx(path: Path, rng: random.Random, first: str, last: str) -> dict[str, Any]:
    import openpyxl

    book = openpyxl.Workbook()
    sheets = rng.randint(1, 4)
    for index in range(sheets):
        sheet = book.active if index == 0 else book.create_sheet()
        sheet.title = f"Sheet{index + 1}"
        if index == 0:
            sheet.append([first])
        for row in range(rng.randint(200, 1500)):
            sheet.append(
                [
                    row,
                    rng.choice(_WORDS),
                    round(rng.uniform(0, 10_000), 2),
                    rng.randint(-500, 500),
                    _sentence(rng, 5),
                    rng.choice(_WORDS),
                ]
            )
        if index == sheets - 1:
            sheet.append([last])
    book.save(str(path))
    return {}


def _pptx(path: Path, rng: random.Random, first: str, last: str) -> dict[str, Any]:
    import pptx
    from pptx.util import Inches

    deck = pptx.Presentation()
    slides = rng.randint(5, 40)
    for index in range(slides):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = first if index == 0 else _sentence(rng, 5)
        body = slide.placeholders[1].text_frame
        body.text = _sentence(rng, 8)
        for _ in range(4):
            body.add_paragraph().text = _sentence(rng, 8)
        box = slide.shapes.add_textbox(Inches(1), Inches(6), Inches(6), Inches(1))
        box.text_frame.text = last if index == slides - 1 else _sentence(rng, 6)
        slide.notes_slide.notes_text_frame.text = _sentence(rng, 10)
    deck.save(str(path))
    return {}


def _text_body(rng: random.Random, first: str, last: str) -> list[str]:
    # 20 KB to about 1 MB: big enough that decoding, not overhead, dominates.
    paragraphs = [_paragraph(rng) for _ in range(rng.randint(25, 1200))]
    return [first, *paragraphs, last]


def _txt(path: Path, rng: random.Random, first: str, last: str) -> dict[str, Any]:
    path.write_text("\n\n".join(_text_body(rng, first, last)), encoding="utf-8")
    return {}


def _md(path: Path, rng: random.Random, first: str, last: str) -> dict[str, Any]:
    parts = [f"# {first}"]
    for index, paragraph in enumerate(_text_body(rng, "", "")[1:-1]):
        if index % 10 == 0:
            parts.append(f"## Part {index // 10 + 1}")
        parts.append(paragraph if index % 7 else f"- **{paragraph}**")
    parts.append(last)
    path.write_text("\n\n".join(parts), encoding="utf-8")
    return {}


def _html(path: Path, rng: random.Random, first: str, last: str) -> dict[str, Any]:
    body = "".join(f"<p>{p}</p>\n" for p in _text_body(rng, first, last))
    page = (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>Bench</title>'
        "<script>var x = 1;</script></head><body><div class='main'>"
        f"{body}</div></body></html>"
    )
    path.write_text(page, encoding="utf-8")
    return {}


def _csv(path: Path, rng: random.Random, first: str, last: str) -> dict[str, Any]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["id", "name", "amount", "note"])
    writer.writerow([0, first, 0, ""])
    for row in range(rng.randint(300, 12_000)):
        writer.writerow(
            [row + 1, rng.choice(_WORDS), rng.randint(0, 99_999), _sentence(rng, 6)]
        )
    writer.writerow(["end", last, 0, ""])
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return {}


def _json(path: Path, rng: random.Random, first: str, last: str) -> dict[str, Any]:
    records = [
        {"id": index, "title": _sentence(rng, 4), "body": _paragraph(rng, 2)}
        for index in range(rng.randint(50, 2500))
    ]
    document = {"title": first, "records": records, "footer": last}
    path.write_text(json.dumps(document, ensure_ascii=False, indent=1), "utf-8")
    return {}


def _xml(path: Path, rng: random.Random, first: str, last: str) -> dict[str, Any]:
    from xml.sax.saxutils import escape

    items = "".join(
        f"<item id='{index}'><name>{escape(_sentence(rng, 4))}</name>"
        f"<text>{escape(_paragraph(rng, 2))}</text></item>\n"
        for index in range(rng.randint(50, 2500))
    )
    document = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<catalog><title>{first}</title>\n{items}<end>{last}</end></catalog>\n"
    )
    path.write_text(document, encoding="utf-8")
    return {}


_WRITERS = {
    "pdf": _pdf,
    "docx": _docx,
    "xlsx": _xlsx,
    "pptx": _pptx,
    "txt": _txt,
    "csv": _csv,
    "md": _md,
    "html": _html,
    "json": _json,
    "xml": _xml,
}


def generate(root: Path, profile: str) -> list[dict[str, Any]]:
    """
    The generated files of ``profile``, written on first use.

    Returns one entry per file: ``path`` (under ``root``), ``format`` and ``facts``
    (the corpus manifest's ``[key, value]`` pairs).
    """
    target = root / profile
    manifest_path = target / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text("utf-8"))
        if manifest.get("version") == GENERATOR_VERSION:
            return [
                entry | {"path": str(target / entry["path"])}
                for entry in manifest["files"]
            ]
    target.mkdir(parents=True, exist_ok=True)
    files = []
    for fmt, count in PROFILES[profile].items():
        for index in range(count):
            # One seed per file, so a file's content does not depend on how
            # many files of other formats the profile has.
            rng = random.Random(f"{fmt}-{index}")
            first, last = _sentinels(index, fmt)
            path = target / f"{fmt}-{index:03d}.{fmt}"
            extra = _WRITERS[fmt](path, rng, first, last)
            facts = [["contains", first], ["contains", last]]
            if "pages" in extra:
                facts.append(["pages", str(extra["pages"])])
            files.append({"path": path.name, "format": fmt, "facts": facts})
    manifest_path.write_text(
        json.dumps({"version": GENERATOR_VERSION, "files": files}, indent=1), "utf-8"
    )
    return [entry | {"path": str(target / entry["path"])} for entry in files]
