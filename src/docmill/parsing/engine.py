"""
Running a parser's rules over one extracted document.

``apply_parser`` is pure CPU work over the text; callers run it where that
is safe: in the extraction child for queued documents, in a thread or a
child for the API's dry runs. Every regular expression runs under the
``regex`` module's per-call timeout, so a pattern that backtracks without
end costs one field an error instead of the whole extraction its deadline.
Nothing here raises for a document: a rule that finds nothing, or finds a
value that is not of its type, is reported per field.
"""

from __future__ import annotations

import bisect
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import regex  # type: ignore[import-untyped]

from docmill.parsing.normalise import TOKENS, normalise
from docmill.parsing.rules import (
    AfterLabelRule,
    BetweenRule,
    ConstantRule,
    MetadataRule,
    ParserSpec,
    RegexRule,
    TableRule,
    page_bounds,
)
from docmill.parsing.tables import (
    FoundTable,
    grids_from_markdown,
    grids_from_tabs,
    table_from_grids,
    table_from_pdf,
)

logger = logging.getLogger(__name__)

# Per search; a sane pattern over a long document takes milliseconds.
REGEX_TIMEOUT_SECONDS = 2.0
PDF_MIME_TYPE = "application/pdf"


@dataclass
class ParseInput:
    """
    What rules may look at: the extraction result and the submission.

    ``original`` is the original document, its file or its bytes, needed
    only to find PDF tables by the position of their characters.
    """

    text: str
    pages: list[str] | None = None
    markdown: str | None = None
    mime_type: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    filename: str | None = None
    title: str | None = None
    user_metadata: dict[str, Any] | None = None
    original: Path | bytes | None = None


@dataclass
class ParseOutcome:
    """The fields found, the per-field errors, and where each value was."""

    fields: dict[str, Any]
    errors: dict[str, dict[str, Any]]
    matches: dict[str, dict[str, Any] | None]

    def to_dict(self) -> dict[str, Any]:
        return {"fields": self.fields, "errors": self.errors, "matches": self.matches}


@dataclass
class _Hit:
    raw: str
    start: int
    end: int


class _FieldError(Exception):
    def __init__(self, code: str, message: str, raw: str | None = None) -> None:
        self.code = code
        self.message = message
        self.raw = raw
        super().__init__(message)


def apply_parser(spec: ParserSpec, document: ParseInput) -> ParseOutcome:
    """Run every rule of ``spec`` over ``document``."""
    run = _Run(document)
    outcome = ParseOutcome({}, {}, {})
    for name, rule in spec.fields.items():
        try:
            value, match = run.field(rule)
        except _FieldError as exc:
            outcome.fields[name] = None
            outcome.matches[name] = None
            error: dict[str, Any] = {"code": exc.code, "message": exc.message}
            if exc.raw is not None:
                error["raw"] = exc.raw
            outcome.errors[name] = error
            continue
        outcome.fields[name] = value
        outcome.matches[name] = match
        if isinstance(value, list):
            for index, row in enumerate(value):
                for column, cell in row.items():
                    if isinstance(cell, _FieldError):
                        row[column] = None
                        outcome.errors[f"{name}[{index}].{column}"] = {
                            "code": cell.code,
                            "message": cell.message,
                            "raw": cell.raw,
                        }
        if (value is None or value == []) and rule.required:
            outcome.errors[name] = {
                "code": "missing",
                "message": f"required field {name!r} was not found",
            }
    return outcome


class _Run:
    def __init__(self, document: ParseInput) -> None:
        self.document = document
        self.text = document.text
        self._offsets: list[tuple[int, int]] | None = None

    # ------------------------------------------------------------- pages

    @property
    def offsets(self) -> list[tuple[int, int]]:
        """Where each page's text sits in the whole text."""
        if self._offsets is None:
            pages = self.document.pages or [self.text]
            offsets, position = [], 0
            for page in pages:
                found = self.text.find(page, position) if page else -1
                start = found if found >= 0 else position
                offsets.append((start, start + len(page)))
                position = start + len(page)
            self._offsets = offsets
        return self._offsets

    def page_range(self, pages: str | int | None) -> tuple[int, int] | None:
        """0-based inclusive page indexes, or None for an empty range."""
        count = len(self.offsets)
        if pages is None:
            return 0, count - 1
        start, end = page_bounds(pages)
        first = 0 if start is None else start - 1 if start > 0 else count + start
        last = count - 1 if end is None else end - 1 if end > 0 else count + end
        first, last = max(first, 0), min(last, count - 1)
        return (first, last) if first <= last else None

    def scope(self, pages: str | int | None) -> tuple[int, int]:
        bounds = self.page_range(pages)
        if bounds is None:
            return 0, 0
        if pages is None:
            return 0, len(self.text)
        return self.offsets[bounds[0]][0], self.offsets[bounds[1]][1]

    def page_of(self, offset: int) -> int | None:
        if not self.document.pages:
            return None
        starts = [start for start, _end in self.offsets]
        return max(bisect.bisect_right(starts, offset), 1)

    def located(self, hit: _Hit) -> dict[str, Any]:
        return {
            "page": self.page_of(hit.start),
            "start": hit.start,
            "end": hit.end,
            "text": hit.raw,
        }

    # ------------------------------------------------------------- rules

    def field(self, rule: Any) -> tuple[Any, dict[str, Any] | None]:
        if isinstance(rule, TableRule):
            return self.table(rule)
        if isinstance(rule, ConstantRule):
            return self.typed(str(rule.value), rule), {"source": "constant"}
        if isinstance(rule, MetadataRule):
            value = self.metadata(rule.key)
            if value is None:
                return None, None
            return self.typed(str(value), rule), {"source": rule.key}
        if isinstance(rule, RegexRule):
            hits = self.regex_hits(rule)
        elif isinstance(rule, AfterLabelRule):
            hits = self.label_hits(rule)
        else:
            hits = self.between_hits(rule)
        if not hits:
            return None, None
        hit = hits[0] if rule.occurrence == "first" else hits[-1]
        return self.typed(hit.raw, rule), self.located(hit)

    def typed(self, raw: str, rule: Any, type_: str | None = None) -> Any:
        try:
            return normalise(raw, type_ or rule.type, rule)  # type: ignore[arg-type]
        except ValueError as exc:
            raise _FieldError("invalid", str(exc), raw) from None

    def _search(self, pattern: Any, start: int, end: int) -> list[Any]:
        try:
            return list(
                pattern.finditer(self.text, start, end, timeout=REGEX_TIMEOUT_SECONDS)
            )
        except TimeoutError:
            raise _FieldError(
                "timeout",
                f"the pattern ran past {REGEX_TIMEOUT_SECONDS:g} seconds; "
                "it probably backtracks: anchor it or make it less greedy",
            ) from None

    def regex_hits(self, rule: RegexRule) -> list[_Hit]:
        flags = regex.MULTILINE | (regex.IGNORECASE if rule.ignore_case else 0)
        pattern = regex.compile(rule.pattern, flags)
        hits = []
        for match in self._search(pattern, *self.scope(rule.pages)):
            if match.group(rule.group) is not None:
                start, end = match.span(rule.group)
                hits.append(_Hit(match.group(rule.group), start, end))
        return hits

    def label_hits(self, rule: AfterLabelRule) -> list[_Hit]:
        alternatives = "|".join(_tolerant(label) for label in rule.labels)
        pattern = regex.compile(
            rf"(?<!\w)(?:{alternatives})(?!\w)[ \t]*[:#.]*[ \t]*", regex.IGNORECASE
        )
        value_pattern = rule.value_pattern or TOKENS.get(rule.type)
        hits = []
        for match in self._search(pattern, *self.scope(rule.pages)):
            candidate = self._after(match)
            if candidate is None:
                continue
            if value_pattern:
                found = self._search(
                    regex.compile(value_pattern), candidate.start, candidate.end
                )
                if found:
                    first = found[0]
                    candidate = _Hit(first.group(0), *first.span())
                elif rule.value_pattern:
                    continue
            hits.append(candidate)
        return hits

    def _after(self, match: Any) -> _Hit | None:
        """The value after a label: the rest of its line or the next line."""
        text = self.text
        line_end = text.find("\n", match.end())
        line_end = len(text) if line_end < 0 else line_end
        start = match.end()
        # A tab ends a table cell: the value is the next cell, not the row.
        rest = text[start:line_end]
        if rest.strip():
            value = rest.split("\t")[0] if rest.strip("\t ") else rest
            end = start + len(value.rstrip())
            return _Hit(text[start:end], start, end)
        line_start = text.rfind("\n", 0, match.start()) + 1
        if text[line_start : match.start()].strip():
            return None  # the label ends a longer line: a table header, say
        position = line_end
        while position < len(text):
            next_end = text.find("\n", position + 1)
            next_end = len(text) if next_end < 0 else next_end
            line = text[position + 1 : next_end]
            if line.strip():
                lead = len(line) - len(line.lstrip())
                start = position + 1 + lead
                value = line.strip().split("\t")[0]
                return _Hit(value, start, start + len(value))
            position = next_end
        return None

    def between_hits(self, rule: BetweenRule) -> list[_Hit]:
        start, end = self.scope(rule.pages)
        pattern = regex.compile(
            rf"{_tolerant(rule.start)}(?P<value>.*?){_tolerant(rule.end)}",
            regex.IGNORECASE | regex.DOTALL,
        )
        hits = []
        for match in self._search(pattern, start, end):
            raw = match.group("value")
            lead = len(raw) - len(raw.lstrip())
            value = raw.strip()
            if value:
                begin = match.start("value") + lead
                hits.append(_Hit(value, begin, begin + len(value)))
        return hits

    def table(self, rule: TableRule) -> tuple[Any, dict[str, Any] | None]:
        columns = rule.resolved_columns
        document = self.document
        found: FoundTable
        if document.mime_type == PDF_MIME_TYPE and document.original is not None:
            found = table_from_pdf(
                document.original, columns, rule.stop_at, self.page_range(rule.pages)
            )
        else:
            grids = grids_from_markdown(document.markdown or "")
            found = table_from_grids(grids, columns, rule.stop_at)
            if not found.rows:
                grids = grids_from_tabs(document.text)
                found = table_from_grids(grids, columns, rule.stop_at)
        rows: list[dict[str, Any]] = []
        for raw_row in found.rows:
            row: dict[str, Any] = {}
            for column in columns:
                key = column.name or ""
                cell = raw_row.get(key, "")
                if not cell:
                    row[key] = None
                    continue
                try:
                    row[key] = self.typed(cell, rule, column.type)
                except _FieldError as exc:
                    row[key] = exc
            rows.append(row)
        if not rows:
            return [], None
        return rows, {"pages": found.pages or None, "rows": len(rows)}

    def metadata(self, key: str) -> Any:
        document = self.document
        if key == "filename":
            return document.filename
        if key == "title":
            return document.title
        if key == "mime_type":
            return document.mime_type
        if key == "page_count":
            return len(document.pages) if document.pages is not None else None
        scope, _, name = key.partition(".")
        source = document.metadata if scope == "metadata" else document.user_metadata
        return (source or {}).get(name)


def _tolerant(words: str) -> str:
    """A pattern for ``words`` that ignores spacing differences."""
    return r"\s+".join(regex.escape(part) for part in words.split())


def parse_payload(
    request: dict[str, Any], payload: dict[str, Any], original: Path | bytes | None
) -> dict[str, Any]:
    """
    Run a parser over an extraction payload, as the extraction child does.

    Args:
        request: ``name``, ``version`` and ``rules`` of the parser, and the
            submission's ``filename``, ``title`` and ``user_metadata``.
        payload: the extraction result, as ``to_payload`` shapes it.
        original: the original (file or bytes), for PDF table geometry.

    A bug in a rule kind must not cost the document its text, so anything
    unexpected becomes an error on the parser's run instead of escaping.
    """
    parsed: dict[str, Any] = {
        "parser": request["name"],
        "parser_version": request["version"],
    }
    try:
        spec = ParserSpec.model_validate(request["rules"])
        document = ParseInput(
            text=payload["text"],
            pages=payload.get("pages"),
            markdown=payload.get("markdown"),
            mime_type=payload.get("mime_type"),
            metadata=payload.get("metadata") or {},
            filename=request.get("filename"),
            title=request.get("title"),
            user_metadata=request.get("user_metadata"),
            original=original,
        )
        parsed |= apply_parser(spec, document).to_dict()
    except Exception as exc:
        logger.exception("parser %s failed", request["name"])
        parsed |= {
            "fields": {},
            "matches": {},
            "errors": {
                "_parser": {
                    "code": "parser_failed",
                    "message": f"{type(exc).__name__}: {exc}",
                }
            },
        }
    return parsed
