"""
Every file of the shared corpus through the workers' extraction path.

Each manifest row is one test, judged by ``corpus.check_row``. Files are read
by the same killable child processes the workers use, two at a time, with a
per-document time limit: a hostile file that hangs fails its row as
``timeout`` instead of hanging the suite. A per-format ``N passed, N failed``
table is printed at the end of the run.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from docmill.exceptions import ExtractionError
from docmill.extract.base import Limits
from docmill.extract.child import ExtractionChild
from tests.conftest import CORPUS_DIR
from tests.integration.corpus import Outcome, Row, check_row, read_manifest

TIMEOUT_SECONDS = 60
ROWS = read_manifest(CORPUS_DIR) if (CORPUS_DIR / "MANIFEST.tsv").exists() else []
TALLY: dict[str, list[int]] = {}


async def _extract_all(corpus: Path, rows: list[Row]) -> dict[str, Outcome]:
    queue = list(rows)
    outcomes: dict[str, Outcome] = {}

    async def slot() -> None:
        child = ExtractionChild(Limits(), memory_mb=2048)
        try:
            while queue:
                row = queue.pop(0)
                passwords = row.values("password")
                try:
                    payload = await child.extract(
                        corpus / row.path,
                        Path(row.path).name,
                        TIMEOUT_SECONDS,
                        password=passwords[0] if passwords else None,
                    )
                except ExtractionError as exc:
                    outcomes[row.path] = Outcome("failed", None, exc.code, exc.message)
                else:
                    outcomes[row.path] = Outcome("completed", payload)
        finally:
            child.close()

    await asyncio.gather(slot(), slot())
    return outcomes


@pytest.fixture(scope="session")
def corpus_outcomes(corpus_dir: Path) -> dict[str, Outcome]:
    return asyncio.run(_extract_all(corpus_dir, ROWS))


@pytest.mark.parametrize("row", ROWS or [None], ids=[r.path for r in ROWS] or ["none"])
def test_corpus_fact_holds(
    row: Row | None, corpus_outcomes: dict[str, Outcome]
) -> None:
    if row is None:
        pytest.skip(f"shared corpus not found at {CORPUS_DIR}")
    verdict = check_row(row, corpus_outcomes[row.path])
    tally = TALLY.setdefault(row.folder, [0, 0])
    tally[0 if not verdict.problems else 1] += 1

    assert verdict.problems == []
