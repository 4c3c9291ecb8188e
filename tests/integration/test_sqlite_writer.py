"""The SQLite writer: its connection, and transactions run back to back."""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

import pytest

from docmill.db.engine import _open_sqlite_writer


def _spilled_journals() -> list[str]:
    """SQLite's open temporary files (unlinked at once: ``etilqs_*``)."""
    links = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor
            links.append(os.readlink(f"/proc/self/fd/{fd}"))
    return [link for link in links if "etilqs_" in link]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")
def test_the_statement_journal_stays_in_memory(tmp_path: Path) -> None:
    """
    A multi-row INSERT into a table with unique indexes keeps a statement
    journal; the writer's must not spill to a temporary file, one more
    file and a write per page on every group commit.
    """
    writer = _open_sqlite_writer(str(tmp_path / "docmill.db"))
    try:
        writer.execute("PRAGMA journal_mode=WAL")
        writer.execute("CREATE TABLE t (id TEXT PRIMARY KEY, sha TEXT UNIQUE, body)")
        insert = f"INSERT INTO t VALUES {', '.join(['(?, ?, ?)'] * 100)}"
        # Only the pages there before the statement are journaled: the last
        # group's keys land all over the indexes of the rows before it.
        for group in range(21):
            keys = [hashlib.sha256(b"%d" % (21 * n + group)) for n in range(100)]
            rows = [(k.hexdigest()[:32], k.hexdigest(), "x") for k in keys]
            writer.execute("BEGIN IMMEDIATE")
            writer.execute(insert, [value for row in rows for value in row])
            spilled = _spilled_journals()
            writer.execute("COMMIT")
    finally:
        writer.close()

    assert spilled == []
