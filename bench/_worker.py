"""
One benchmark worker: extracts files with one tool and reports each timing.

``extract.py`` starts this script once per (tool, format group, pass), with
the dev venv's python for docmill and the floor and with the peers' venv
python for the peers, so each tool's imports and peak RSS stay its own. It
reads one JSON job per line on stdin and answers each with one JSON line on
stdout. Only the standard library is imported at module level: the peers'
venv has no docmill, and the dev venv has no peers.

A job is ``{"path", "format", "facts", "warm"}`` or, for the 2-process run,
``{"pool": [[path, format], ...], "warm": [[path, format], ...]}``.
"""

from __future__ import annotations

import json
import os
import re
import resource
import sys
import time
import traceback
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

# What one tool returns for one file: its main text and, where the tool
# reports one, the page count.
Extracted = tuple[str, int | None]


def normalise(text: str) -> str:
    """The corpus test's comparison form: NFKC, whitespace collapsed, casefold."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip().casefold()


def check_facts(facts: list[list[str]], text: str, pages: int | None) -> list[str]:
    """
    The facts this file misses, judged as docmill's corpus test judges them.

    ``pages=`` is judged only when the tool reports a page count at all, so a
    peer without the notion is not failed for it.
    """
    missed = []
    folded = None
    for key, value in facts:
        if key == "contains":
            folded = folded if folded is not None else normalise(text)
            if normalise(value) not in folded:
                missed.append(f"contains={value[:40]!r}")
        elif key == "pages" and pages is not None and pages != int(value):
            missed.append(f"pages={value}: got {pages}")
    return missed


# -- docmill ---------------------------------------------------------------


def _docmill() -> Callable[[str, str], Extracted]:
    from docmill.extract.base import Limits
    from docmill.extract.child import extract_in_process

    limits = Limits()

    def all_text(payload: dict[str, Any]) -> str:
        # Mail attachments and archive members count, as in the corpus test.
        parts = [payload.get("text") or ""]
        for child in payload.get("children") or []:
            if child.get("result"):
                parts.append(all_text(child["result"]))
        return "\n".join(parts)

    def run(path: str, fmt: str) -> Extracted:
        payload = extract_in_process(Path(path), Path(path).name, limits)
        pages = payload.get("page_count") if fmt == "pdf" else None
        return all_text(payload), pages

    return run


# -- the bare library calls ---------------------------------------------------


def _floor() -> Callable[[str, str], Extracted]:
    def pdf(path: str) -> Extracted:
        import pypdfium2

        document = pypdfium2.PdfDocument(path)
        try:
            texts = []
            for index in range(len(document)):
                page = document[index]
                textpage = page.get_textpage()
                texts.append(textpage.get_text_bounded())
                textpage.close()
                page.close()
            return "\n".join(texts), len(texts)
        finally:
            document.close()

    def docx(path: str) -> Extracted:
        import docx as python_docx

        document = python_docx.Document(path)
        return "\n".join(p.text for p in document.paragraphs), None

    def xlsx(path: str) -> Extracted:
        import openpyxl

        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
        try:
            cells = []
            for sheet in book.worksheets:
                for row in sheet.iter_rows(values_only=True):
                    cells.extend(str(v) for v in row if v is not None)
            return "\n".join(cells), None
        finally:
            book.close()

    def pptx(path: str) -> Extracted:
        import pptx as python_pptx

        deck = python_pptx.Presentation(path)
        texts = [
            shape.text_frame.text
            for slide in deck.slides
            for shape in slide.shapes
            if shape.has_text_frame
        ]
        return "\n".join(texts), None

    def eml(path: str) -> Extracted:
        import email
        import email.policy

        with open(path, "rb") as handle:
            message = email.message_from_binary_file(
                handle, policy=email.policy.default
            )
        body = message.get_body(preferencelist=("plain", "html"))
        subject = str(message.get("subject", ""))
        return subject + "\n" + (body.get_content() if body else ""), None

    def text(path: str) -> Extracted:
        # A bare decode is the floor; "replace" keeps non-UTF-8 files timed
        # instead of dropping them, and the missed facts show the cost of that.
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8", errors="replace"), None

    def html(path: str) -> Extracted:
        import lxml.html

        with open(path, "rb") as handle:
            data = handle.read()
        return lxml.html.document_fromstring(data).text_content(), None

    def xml(path: str) -> Extracted:
        from lxml import etree

        # The corpus holds entity bombs and an external entity: never expand
        # or fetch them, as docmill must not either.
        parser = etree.XMLParser(
            resolve_entities=False, no_network=True, huge_tree=False
        )
        with open(path, "rb") as handle:
            root = etree.fromstring(handle.read(), parser)
        return " ".join(root.itertext()), None

    readers = {
        "pdf": pdf,
        "docx": docx,
        "xlsx": xlsx,
        "pptx": pptx,
        "eml": eml,
        "txt": text,
        "csv": text,
        "md": text,
        "json": text,
        "html": html,
        "xml": xml,
    }

    def run(path: str, fmt: str) -> Extracted:
        reader = readers.get(fmt)
        if reader is None:
            raise Unsupported(f"no bare library call for {fmt}")
        return reader(path)

    return run


# -- peers -------------------------------------------------------------------


def _markitdown() -> Callable[[str, str], Extracted]:
    from markitdown import MarkItDown

    converter = MarkItDown()

    def run(path: str, fmt: str) -> Extracted:
        return converter.convert(path).text_content, None

    return run


def _kreuzberg() -> Callable[[str, str], Extracted]:
    from kreuzberg import ExtractionConfig, extract_file_sync

    # Kreuzberg caches results on disk by default; a bench that re-reads the
    # same files would then time cache hits, not extraction.
    config = ExtractionConfig(use_cache=False)

    def run(path: str, fmt: str) -> Extracted:
        result = extract_file_sync(path, config=config)
        pages = None
        if fmt == "pdf":
            pages = (result.metadata or {}).get("page_count")
        return result.content, pages

    return run


def _unstructured() -> Callable[[str, str], Extracted]:
    from unstructured.partition.auto import partition

    def run(path: str, fmt: str) -> Extracted:
        return "\n\n".join(str(element) for element in partition(filename=path)), None

    return run


TOOLS = {
    "docmill": _docmill,
    "floor": _floor,
    "markitdown": _markitdown,
    "kreuzberg": _kreuzberg,
    "unstructured": _unstructured,
}


class Unsupported(Exception):
    """The tool has no reader for this format."""


def _peak_rss_kb() -> int:
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across execve, so a worker
    # started from a big parent would report the parent's peak as its own.
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:300]}"


def _one(run: Callable[[str, str], Extracted], job: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        text, pages = run(job["path"], job["format"])
    except Unsupported as exc:
        return {"status": "unsupported", "error": str(exc)}
    except Exception as exc:
        return {
            "status": "error",
            "seconds": time.perf_counter() - started,
            "error": _describe(exc),
        }
    seconds = time.perf_counter() - started
    return {
        "status": "ok",
        "seconds": seconds,
        "pages": pages,
        "chars": len(text),
        "missed": check_facts(job.get("facts") or [], text, pages),
    }


def _pool_task(args: tuple[str, str]) -> bool:
    try:
        _POOL_RUN(*args)
    except Exception:
        return False
    return True


_POOL_RUN: Callable[[str, str], Extracted]


def _pool_warm(warm: list[tuple[str, str]]) -> None:
    for item in warm:
        _pool_task(item)


def _pool(tool: str, job: dict[str, Any]) -> dict[str, Any]:
    """Files/s over all cores: the group's files through 2 processes."""
    from concurrent.futures import ProcessPoolExecutor

    global _POOL_RUN
    _POOL_RUN = TOOLS[tool]()
    processes = job.get("processes", 2)
    warm = [tuple(item) for item in job["warm"]]
    files = [tuple(item) for item in job["pool"]]
    # fork: each process inherits the imports already done here, as the
    # workers' forkserver children do; the initializer then warms each one
    # as the single-process worker was warmed.
    import multiprocessing

    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(
        processes, mp_context=context, initializer=_pool_warm, initargs=(warm,)
    ) as pool:
        # Start every process (and so its warm-up) before the clock starts.
        list(pool.map(time.sleep, [0.2] * processes))
        started = time.perf_counter()
        done = sum(pool.map(_pool_task, files, chunksize=1))
        seconds = time.perf_counter() - started
    return {"status": "ok", "seconds": seconds, "files": len(files), "ok": done}


def main() -> None:
    tool = sys.argv[1]
    out = sys.stdout
    # Libraries that print to stdout would corrupt the protocol.
    sys.stdout = sys.stderr
    try:
        run = TOOLS[tool]()
    except Exception as exc:
        traceback.print_exc()
        out.write(json.dumps({"status": "broken", "error": _describe(exc)}) + "\n")
        out.flush()
        return
    out.write(json.dumps({"status": "ready", "pid": os.getpid()}) + "\n")
    out.flush()
    for line in sys.stdin:
        job = json.loads(line)
        reply = _pool(tool, job) if "pool" in job else _one(run, job)
        reply["rss_kb"] = _peak_rss_kb()
        out.write(json.dumps(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
