"""
Full-text search over extracted text.

The index lives in ``document_search``, whose shape differs by database
(migration 0004): an FTS5 table on SQLite, a ``tsvector`` column with a GIN
index on PostgreSQL. Both use a language-neutral tokenizer (no stemming), so
a document in any language is found by its words as written. Queries are
plain words, all of which must occur; no query syntax reaches the engine, so
no input can make a search fail.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from sqlalchemy import String, column, text

# PostgreSQL refuses a tsvector over 1 MiB; the first half million characters
# stay well below that even for text of unique words. SQLite takes the same
# cut so both databases find the same documents.
INDEXED_CHARS = 500_000

_WORD = re.compile(r"\w+", re.UNICODE)


def query_words(q: str) -> list[str]:
    return _WORD.findall(q)[:32]


async def index_text(
    connection: Any, document_id: str, body: str, *, replace: bool = True
) -> None:
    """
    Index the document's text, inside the caller's transaction.

    Args:
        replace: whether an earlier entry of the document may exist and must
            go first; False skips that search when there cannot be one.
    """
    if replace:
        await unindex(connection, [document_id])
    body = body[:INDEXED_CHARS]
    if connection.dialect.name == "sqlite":
        statement = (
            "INSERT INTO document_search (document_id, body) VALUES (:id, :body)"
        )
    else:
        # strip() drops word positions: they are not needed for matching and
        # would triple the vector's size.
        statement = (
            "INSERT INTO document_search (document_id, body) "
            "VALUES (:id, strip(to_tsvector('simple', :body)))"
        )
    await connection.execute(text(statement), {"id": document_id, "body": body})


async def copy_index(connection: Any, source_id: str, target_id: str) -> None:
    await connection.execute(
        text(
            "INSERT INTO document_search (document_id, body) "
            "SELECT :target, body FROM document_search WHERE document_id = :source"
        ),
        {"source": source_id, "target": target_id},
    )


async def unindex(connection: Any, document_ids: Iterable[str]) -> None:
    ids = list(document_ids)
    if not ids:
        return
    names = ", ".join(f":id{n}" for n in range(len(ids)))
    await connection.execute(
        text(f"DELETE FROM document_search WHERE document_id IN ({names})"),
        {f"id{n}": value for n, value in enumerate(ids)},
    )


def matching_ids(dialect: str, q: str) -> Any:
    """A selectable of the ids of documents whose text has every word of ``q``."""
    words = query_words(q)
    if not words:
        # Nothing searchable (only punctuation): nothing matches.
        return text("SELECT document_id FROM document_search WHERE 1 = 0").columns(
            column("document_id", String)
        )
    if dialect == "sqlite":
        # Each word as a quoted FTS5 string: no operator or column filter in
        # the caller's text can reach the query parser.
        match = " ".join('"' + word.replace('"', '""') + '"' for word in words)
        clause = text(
            "SELECT document_id FROM document_search WHERE document_search MATCH :q"
        ).bindparams(q=match)
    else:
        clause = text(
            "SELECT document_id FROM document_search "
            "WHERE body @@ plainto_tsquery('simple', :q)"
        ).bindparams(q=" ".join(words))
    return clause.columns(column("document_id", String))
