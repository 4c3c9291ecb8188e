"""
Reading ``shared/corpus/MANIFEST.tsv`` and judging docmill's results by it.

The corpus README's table "What the facts ask of docmill" is the rule book;
``check_row`` follows it fact by fact. Facts that describe the file rather
than docmill's result (byte-order marks, raw bytes, zip structure) are not
judged; facts about structure (sheets, rows, subject) are judged where the
result reports them.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Per corpus folder: [passed, failed, disputed], filled by the corpus test and
# printed at the end of the run by the root conftest.
TALLY: dict[str, list[int]] = {}


@dataclass
class Row:
    path: str
    facts: list[tuple[str, str]]

    @property
    def folder(self) -> str:
        return self.path.split("/", 1)[0]

    def values(self, key: str) -> list[str]:
        return [value for fact_key, value in self.facts if fact_key == key]


@dataclass
class Outcome:
    status: str
    payload: dict[str, Any] | None = None
    error_code: str | None = None
    error_message: str | None = None


@dataclass
class Verdict:
    problems: list[str] = field(default_factory=list)
    checked: int = 0
    unreported: list[str] = field(default_factory=list)


def read_manifest(corpus: Path) -> list[Row]:
    rows = []
    lines = (corpus / "MANIFEST.tsv").read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    for line in lines[1:]:
        if not line.strip():
            continue
        record = dict(zip(header, line.split("\t"), strict=True))
        facts = []
        for fact in record["expect"].split("; "):
            key, _, value = fact.partition("=")
            facts.append((key, value))
        rows.append(Row(record["path"], facts))
    return rows


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip().casefold()


def _all_text(payload: dict[str, Any]) -> str:
    parts = [payload.get("text") or ""]
    for child in payload.get("children") or []:
        if child.get("result"):
            parts.append(_all_text(child["result"]))
    return "\n".join(parts)


def _error_codes(outcome: Outcome) -> set[str]:
    codes = {outcome.error_code} if outcome.error_code else set()

    def walk(payload: dict[str, Any]) -> None:
        for child in payload.get("children") or []:
            if child.get("error"):
                codes.add(child["error"]["code"])
            if child.get("result"):
                walk(child["result"])

    if outcome.payload:
        walk(outcome.payload)
    return codes


_TEXT_KEYS = {
    "contains",
    "header_contains",
    "footer_contains",
    "footnote_contains",
    "endnote_contains",
    "comment_contains",
    "textbox_contains",
    "notes_contains",
    "master_contains",
}
_NOT_JUDGED = {
    "bom",
    "declared_charset",
    "encoding",
    "encrypted",
    "raw_contains",
    "zip_part_contains",
    "zip_member",
    "strict",
    "damaged_stream",
    "rotation",
    "fields",
    "epoch",
    "sections",
    "tables",
    "password",
    "entities",
    "external_entity",
    "cell",
}
_ERRORS = {
    "encrypted": {"encrypted"},
    "empty": {"empty"},
    "unknown-format": {"unsupported_format"},
}


def check_row(row: Row, outcome: Outcome, unlocked: Outcome | None = None) -> Verdict:
    """
    Judge one file's outcome by its facts.

    Args:
        row: the manifest row.
        outcome: the result without a password.
        unlocked: for rows with ``password=P``, the result with P; the
            content facts are judged on it, the error facts on ``outcome``.
    """
    verdict = Verdict()
    problems = verdict.problems
    if outcome.status == "failed" and outcome.error_code in ("timeout", "worker_crash"):
        problems.append(
            f"did not finish: {outcome.error_code}: {outcome.error_message}"
        )
        return verdict
    error_facts = row.values("error")
    if "empty" in error_facts:
        # A zero-byte file is also "not a zip" and "corrupt" to the reference
        # tools; for docmill, being empty comes first.
        error_facts = ["empty"]
    for expected in error_facts:
        verdict.checked += 1
        if expected in _ERRORS:
            if outcome.error_code not in _ERRORS[expected]:
                problems.append(
                    f"error={expected}: got {outcome.status} {outcome.error_code}"
                )
        elif expected == "corrupt":
            if outcome.status == "failed" and outcome.error_code != "corrupt":
                problems.append(f"error=corrupt: failed as {outcome.error_code}")
        elif expected in ("not-zip", "invalid-json") and outcome.status != "completed":
            problems.append(
                f"error={expected}: should be read as text, got {outcome.error_code}"
            )
    expected_failure = bool(error_facts)
    if row.values("zip_quine") or row.values("zip_declared_size"):
        verdict.checked += 1
        expected_failure = True
        if not _error_codes(outcome) & {"limit_exceeded", "corrupt"}:
            problems.append("archive limits: no limit_exceeded or corrupt reported")
    if row.values("entities") or row.values("external_entity"):
        # Refusing an entity bomb outright is as good as reading around it;
        # what matters is that nothing is expanded or fetched.
        verdict.checked += 1
        if outcome.status == "failed":
            expected_failure = True
            if outcome.error_code not in ("limit_exceeded", "corrupt"):
                problems.append(f"entity file failed as {outcome.error_code}")
    if unlocked is not None:
        outcome = unlocked
        expected_failure = False
    if outcome.status != "completed":
        if not expected_failure:
            problems.append(f"failed: {outcome.error_code}: {outcome.error_message}")
        return verdict
    payload = outcome.payload or {}
    metadata = payload.get("metadata") or {}
    text = normalise(_all_text(payload))

    for key, value in row.facts:
        if key in _TEXT_KEYS:
            verdict.checked += 1
            if normalise(value) not in text:
                problems.append(f"{key}={value!r} not in text")
        elif key == "pages":
            verdict.checked += 1
            if payload.get("page_count") != int(value):
                problems.append(f"pages={value}: got {payload.get('page_count')}")
        elif key in ("title", "author"):
            verdict.checked += 1
            found = metadata.get(key)
            if not found or normalise(value) != normalise(str(found)):
                problems.append(f"{key}={value!r}: got {found!r}")
        elif key == "image_only":
            verdict.checked += 1
            if not metadata.get("needs_ocr"):
                problems.append("image_only: pages not marked needs_ocr")
        elif key == "slides":
            verdict.checked += 1
            if payload.get("page_count") != int(value):
                problems.append(f"slides={value}: got {payload.get('page_count')}")
        elif key in ("sheets", "rows", "attachments", "json_keys", "codepage"):
            _check_reported(verdict, metadata, key, int(value))
        elif key in ("subject", "from", "delimiter"):
            _check_reported(verdict, metadata, key, value)
        elif key not in _NOT_JUDGED and key not in (
            "error",
            "zip_quine",
            "zip_declared_size",
        ):
            verdict.unreported.append(key)
    return verdict


def _check_reported(
    verdict: Verdict, metadata: dict[str, Any], key: str, expected: Any
) -> None:
    if key not in metadata:
        verdict.unreported.append(key)
        return
    verdict.checked += 1
    found = metadata[key]
    if isinstance(found, list) and isinstance(expected, int):
        found = len(found)
    if isinstance(expected, str):
        if normalise(expected) not in normalise(str(found)):
            verdict.problems.append(f"{key}={expected!r}: got {found!r}")
    elif found != expected:
        verdict.problems.append(f"{key}={expected}: got {found!r}")
