"""
Full-text search over extracted text.

The index lives in ``document_search``, whose shape differs by database: an
FTS5 table on SQLite, a ``tsvector`` column with a GIN index on PostgreSQL
(migrations 0004, 0006 and 0008). Both hold the same words, by SQLite's
rule (``text_words``): a word is a run of letters and digits, case folded,
Latin diacritics removed, no stemming, so a document in any language is found by
its words as written. Queries are plain words split by the same rule, all
of which must occur; no query syntax reaches the engine, so no input can
make a search fail.

A search lists matches newest first, and its first page must not cost more
as matches grow. On SQLite an entry's rowid is its document's ``seq`` (the
order documents were queued, migration 0006), so FTS5 hands over matches
newest first and stops after a page. On PostgreSQL see ``_newest_postgres``.
The FTS5 table keeps no text of its own: it reads ``document_contents``
through a view (migration 0008), and triggers drop an entry before its text
goes.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Integer,
    Select,
    String,
    cast,
    column,
    func,
    literal,
    literal_column,
    select,
    table,
    text,
    tuple_,
)
from sqlalchemy.dialects.postgresql import TSQUERY
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from docmill.db.models import Document

# PostgreSQL refuses a tsvector over 1 MiB; the first half million characters
# stay well below that even for text of unique words in alphabetic scripts.
# SQLite takes the same cut so both databases find the same documents.
INDEXED_CHARS = 500_000
# Not below it for Chinese or Japanese, three bytes a character and a word
# from one punctuation mark to the next: 500,000 characters of random
# ideographs, a comma every 6-16, make 1.38 MB of words, and an entry
# PostgreSQL refused failed the document's whole result. PostgreSQL's entry
# keeps the words, in SQLite's term order, up to its limit for the words'
# bytes (1 MiB less one), so such a text is stored and found by most of its
# words there, by all of them on SQLite. Indexing fewer characters of such
# texts on both databases would keep the two alike, at the price of words
# neither finds.
POSTGRES_ENTRY_BYTES = (1 << 20) - 1

# The search schema, which the models do not describe: SQLite's FTS5 table
# and documents.seq (migration 0006), and PostgreSQL's table.
_FTS = table("document_search", column("rowid", Integer))
_SEQ = literal_column("documents.seq", Integer)
_PG_SEARCH = table("document_search", column("document_id", String), column("body"))

# PostgreSQL search (``_newest_postgres``): how many of the newest documents
# per row of the page are checked first, and up to how many matches of a
# word are taken from the index and sorted.
WINDOW_PER_ROW = 20
FEW_MATCHES = 5_000


# SQLite's index splits text by this rule (migration 0004); PostgreSQL's
# entries and both databases' queries take their words from it too.
TOKENIZER = "unicode61 remove_diacritics 2"

# The longest word PostgreSQL takes into a tsvector or a tsquery, in bytes
# of UTF-8; SQLite has no limit, so a longer word (a hex dump, say) is found
# on SQLite only.
POSTGRES_WORD_BYTES = 2047

QUERY_WORDS = 32


class _Splitter(threading.local):
    """
    Empty in-memory FTS5 tables, one set per thread, that split a text into
    words exactly as SQLite's index does: with the same tokenizer and the
    same Unicode tables, those of the SQLite library Python links.

    The rule is not written again in Python because SQLite's tables are its
    own (an older Unicode than Python's, Greek and Cyrillic accents kept,
    code points it does not know taken as letters): a copy made from
    Python's ``unicodedata`` would split words differently at 3,262
    assigned code points and fold 1,844 others differently (SQLite 3.40,
    Unicode 14).
    """

    def __init__(self) -> None:
        self.connection = sqlite3.connect(":memory:", isolation_level=None)
        # Contentless and without positions: only the distinct words are
        # read back, from the vocabulary.
        self.connection.execute(
            "CREATE VIRTUAL TABLE text USING fts5(body, content='', "
            f"detail=none, columnsize=0, tokenize='{TOKENIZER}')"
        )
        self.connection.execute(
            "CREATE VIRTUAL TABLE text_words USING fts5vocab(text, 'row')"
        )
        # With positions, for a query's words in the order typed.
        self.connection.execute(
            "CREATE VIRTUAL TABLE query USING fts5(body, content='', "
            f"columnsize=0, tokenize='{TOKENIZER}')"
        )
        self.connection.execute(
            "CREATE VIRTUAL TABLE query_words USING fts5vocab(query, 'instance')"
        )

    def text_words(self, body: str) -> list[str]:
        # One string: a row per word cost a fifth more. No word holds a space.
        joined = self._read(
            "text",
            body,
            "SELECT group_concat(term, ' ') FROM text_words "
            f"WHERE length(CAST(term AS BLOB)) <= {POSTGRES_WORD_BYTES}",
        )
        if not joined[0][0]:
            return []
        words: list[str] = joined[0][0].split(" ")
        if len(joined[0][0]) * 4 <= POSTGRES_ENTRY_BYTES:
            return words  # however many bytes a character, the words fit
        room = POSTGRES_ENTRY_BYTES
        for count, word in enumerate(words):
            room -= len(word.encode())
            if room < 0:
                return words[:count]
        return words

    def query_words(self, q: str) -> list[str]:
        rows = self._read("query", q, "SELECT term FROM query_words ORDER BY offset")
        return [term for (term,) in rows]

    def _read(self, table: str, body: str, words: str) -> list[Any]:
        # Indexed in a transaction that is rolled back, so the tables stay
        # empty and the next text starts from nothing.
        self.connection.execute("BEGIN")
        try:
            self.connection.execute(
                f"INSERT INTO {table} (rowid, body) VALUES (1, ?)", (body,)
            )
            return self.connection.execute(words).fetchall()
        finally:
            self.connection.execute("ROLLBACK")


_SPLITTER = _Splitter()


def text_words(body: str) -> list[str]:
    """
    The distinct words of ``body`` as SQLite's index holds them, but for
    those longer than PostgreSQL takes: what PostgreSQL's entry holds.
    """
    return _SPLITTER.text_words(body)


def query_words(q: str) -> list[str]:
    """The distinct words of a query, in the order typed, at most 32."""
    return list(dict.fromkeys(_SPLITTER.query_words(q)))[:QUERY_WORDS]


def _fits_postgres(word: str) -> bool:
    return len(word.encode()) <= POSTGRES_WORD_BYTES


async def index_texts(connection: Any, texts: Sequence[tuple[str, str]]) -> None:
    """
    Index new documents' texts (document id, text), inside the caller's
    transaction, in one statement; none of them may have an entry yet.

    On SQLite each text is read back from the document's stored contents,
    which must be written first: an entry is removed later by tokenizing
    the stored text again, and one made from any other text would leave
    tokens behind (a corrupt index).
    """
    if connection.dialect.name == "sqlite":
        await connection.execute(SQLITE_INDEX, sqlite_index_parameters(texts))
        return
    await connection.execute(
        POSTGRES_INDEX,
        [
            {"id": document_id, "words": text_words(body[:INDEXED_CHARS])}
            for document_id, body in texts
        ],
    )


# The words go in as they are: PostgreSQL's parser (to_tsvector) would split
# them again by its own rule. A tsvector without positions, as phrases are
# never searched.
POSTGRES_INDEX = text(
    "INSERT INTO document_search (document_id, body) "
    "VALUES (:id, array_to_tsvector(CAST(:words AS text[])))"
)


# Also run on its own by the job store's one-hop SQLite writer.
SQLITE_INDEX = text(
    "INSERT INTO document_search (rowid, body) "
    f"SELECT documents.seq, substr(document_contents.text, 1, {INDEXED_CHARS}) "
    "FROM documents JOIN document_contents "
    "ON document_contents.document_id = documents.id WHERE documents.id = :id"
)


def sqlite_index_parameters(
    texts: Sequence[tuple[str, str]],
) -> list[dict[str, Any]]:
    return [{"id": document_id} for document_id, _ in texts]


async def copy_index(connection: Any, source_id: str, target_id: str) -> None:
    if connection.dialect.name == "sqlite":
        # The target's contents are the source's, copied already.
        await connection.execute(SQLITE_INDEX, {"id": target_id})
        return
    await connection.execute(
        text(
            "INSERT INTO document_search (document_id, body) "
            "SELECT :target, body FROM document_search WHERE document_id = :source"
        ),
        {"source": source_id, "target": target_id},
    )


async def unindex(connection: Any, document_ids: Iterable[str]) -> None:
    """
    Drop the documents' entries.

    On SQLite an entry goes with its document's stored text, by triggers
    (migration 0008), since only the text can say which tokens to remove:
    there is nothing left to do here.
    """
    ids = list(document_ids)
    if not ids or connection.dialect.name == "sqlite":
        return
    names = ", ".join(f":id{n}" for n in range(len(ids)))
    await connection.execute(
        text(f"DELETE FROM document_search WHERE document_id IN ({names})"),
        {f"id{n}": value for n, value in enumerate(ids)},
    )


async def newest_matches(
    connection: AsyncConnection,
    query: Select[Any],
    q: str,
    before: tuple[datetime, str] | None,
    limit: int,
) -> Sequence[Row[Any]]:
    """
    One page of the documents of ``query`` whose text has every word of
    ``q``, newest first, after the cursor ``before`` (the created_at and id of
    the last document of the previous page).
    """
    words = query_words(q)
    if not words:
        # Nothing searchable (only punctuation): nothing matches.
        return []
    if connection.dialect.name == "sqlite":
        page = _newest_sqlite(query, words, before).limit(limit)
        return await _all(connection, page)
    if not all(map(_fits_postgres, words)):
        # No entry holds such a word.
        return []
    return await _newest_postgres(connection, query, words, before, limit)


def _newest_sqlite(
    query: Select[Any], words: list[str], before: tuple[datetime, str] | None
) -> Select[Any]:
    # Each word as a quoted FTS5 string: no operator or column filter in the
    # caller's text can reach the query parser.
    match = " ".join('"' + word.replace('"', '""') + '"' for word in words)
    # The index drives the loop, in rowid order, and the documents' other
    # filters apply to each match as it comes; a page ends the scan.
    query = (
        query.select_from(_FTS)
        .join(Document.__table__, _FTS.c.rowid == _SEQ)
        .where(text("document_search MATCH :q").bindparams(q=match))
    )
    if before is not None:
        query = query.where(_FTS.c.rowid < _sqlite_position(before))
    return query.order_by(_FTS.c.rowid.desc())


def _sqlite_position(before: tuple[datetime, str]) -> Any:
    """
    The ``seq`` after which the page that follows ``before`` starts.

    Normally the cursor's document's own; if that document was deleted since,
    the next older one's (by created_at and id), plus one.
    """
    cursor = select(_SEQ).where(Document.id == before[1]).scalar_subquery()
    older = (
        select(_SEQ + 1)
        .where(older_than(before))
        .order_by(Document.created_at.desc(), Document.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    return func.coalesce(cursor, older)


async def _newest_postgres(
    connection: AsyncConnection,
    query: Select[Any],
    words: list[str],
    before: tuple[datetime, str] | None,
    limit: int,
) -> Sequence[Row[Any]]:
    """
    A page of matches on PostgreSQL, by whichever road is short for ``q``.

    The planner cannot know how common a word is unless it is among the
    most common ones of its statistics; it took any other word for a common
    one and walked all documents by date to find a rare word's one match
    (2.3 s at a million documents). So the roads are chosen here, each
    statement built so that its plan cannot change with the word:

    1. walk the newest documents in scope, at most ``WINDOW_PER_ROW`` per
       row asked for, checking each one's entry: a word in recent text fills
       the page after a few;
    2. else, when the word is in at most ``FEW_MATCHES`` documents, take them
       all from the GIN index and sort them;
    3. else, walk every document in scope by date, as in 1.
    """
    tsquery = cast(literal(_tsquery_text(words), String), TSQUERY)
    newest = query.order_by(Document.created_at.desc(), Document.id.desc())
    if before is not None:
        newest = newest.where(older_than(before))
    window = (
        newest.with_only_columns(Document.id, Document.created_at)
        .limit(limit * WINDOW_PER_ROW)
        .subquery()
    )
    in_window = (
        select(window.c.id)
        .where(_entry_of(window.c.id).op("@@")(tsquery))
        .order_by(window.c.created_at.desc(), window.c.id.desc())
        .limit(limit)
    )
    rows = await _all(connection, newest.where(Document.id.in_(in_window)))
    if len(rows) == limit:
        return rows
    walked = select(func.count()).select_from(window)
    if (await connection.execute(walked)).scalar_one() < limit * WINDOW_PER_ROW:
        return rows  # the window held every document in scope

    found = select(_PG_SEARCH.c.document_id).where(_PG_SEARCH.c.body.op("@@")(tsquery))
    counted = select(func.count()).select_from(found.limit(FEW_MATCHES + 1).subquery())
    if (await connection.execute(counted)).scalar_one() <= FEW_MATCHES:
        # MATERIALIZED keeps the planner from folding the index scan back
        # into a walk by date.
        matches = found.cte("matches").prefix_with("MATERIALIZED")
        page = newest.where(Document.id.in_(select(matches.c.document_id)))
    else:
        page = newest.where(_entry_of(Document.id).op("@@")(tsquery))
    return await _all(connection, page.limit(limit))


def _tsquery_text(words: list[str]) -> str:
    """
    Every word, as a quoted lexeme: taken as it is, not parsed again by
    PostgreSQL's rule (plainto_tsquery would). SQLite's words hold neither
    quote nor backslash, but an escape costs nothing against a tokenizer
    option that would let one through.
    """
    quoted = (word.replace("\\", "\\\\").replace("'", "''") for word in words)
    return " & ".join(f"'{word}'" for word in quoted)


async def _all(connection: AsyncConnection, query: Select[Any]) -> Sequence[Row[Any]]:
    rows: Sequence[Row[Any]] = (await connection.execute(query)).all()
    return rows


def _entry_of(document_id: Any) -> Any:
    """
    The search entry of each row, as a subquery the planner runs per row
    through the primary key (it never turns one into a join).
    """
    return (
        select(_PG_SEARCH.c.body)
        .where(_PG_SEARCH.c.document_id == document_id)
        .scalar_subquery()
    )


def older_than(before: tuple[datetime, str]) -> Any:
    """Documents after the cursor ``before`` in created_at, id order."""
    created_at, document_id = before
    # A row-value comparison, so both databases can seek the (created_at, id)
    # indexes to the cursor instead of filtering.
    return tuple_(Document.created_at, Document.id) < tuple_(
        literal(created_at, Document.created_at.type),
        literal(document_id, Document.id.type),
    )
