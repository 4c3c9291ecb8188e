"""search index without its own copy of the text, on SQLite

Revision ID: 0008
Revises: 0007

The FTS5 table of 0006 kept every document's text a second time (its
``_content`` table) beside ``document_contents``, and a row size per entry
(``_docsize``) that only ranking reads; docmill lists matches newest first
and never ranks. Each result wrote both, a quarter of the search index's
pages. The table is now an external-content one whose text is
``document_contents``' own, through a view: the index keeps only its
tokens. It reads the view only to answer a column or to rebuild.

An external-content index cannot see its text change, so its entries are
dropped by triggers while the text is still there to tokenize: before a
document is deleted (its contents go by cascade after the row, when the
document's ``seq`` is gone) and before its contents are deleted on their
own (a reprocessed result). The text indexed is the first 500,000
characters (``search.INDEXED_CHARS``), as ``substr`` cuts it here.

Upgrading re-tokenizes every stored text (``rebuild``), about 0.3 s of
CPU per 1,000 documents of the test corpus's size (11,000 characters on
average), all in the migration's one transaction; an entry whose document
has no stored contents, which only a crash before 0006 or a hand edit could
leave, is not kept.

PostgreSQL keeps its schema.
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TOKENIZER = "tokenize='unicode61 remove_diacritics 2'"
INDEXED_CHARS = 500_000


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute("DROP TRIGGER documents_unindex")
    op.execute("DROP TABLE document_search")
    op.execute(
        "CREATE VIEW document_search_text AS "
        f"SELECT documents.seq AS seq, substr(document_contents.text, 1, "
        f"{INDEXED_CHARS}) AS body FROM documents JOIN document_contents "
        "ON document_contents.document_id = documents.id "
        "WHERE documents.seq IS NOT NULL"
    )
    op.execute(
        "CREATE VIRTUAL TABLE document_search USING fts5(body, "
        "content='document_search_text', content_rowid='seq', columnsize=0, "
        f"{TOKENIZER})"
    )
    op.execute("INSERT INTO document_search (document_search) VALUES ('rebuild')")
    op.execute(
        "CREATE TRIGGER documents_unindex BEFORE DELETE ON documents "
        "WHEN OLD.seq IS NOT NULL BEGIN "
        "INSERT INTO document_search (document_search, rowid, body) "
        f"SELECT 'delete', OLD.seq, substr(text, 1, {INDEXED_CHARS}) "
        "FROM document_contents WHERE document_id = OLD.id; END"
    )
    op.execute(
        "CREATE TRIGGER document_contents_unindex BEFORE DELETE ON "
        "document_contents BEGIN "
        "INSERT INTO document_search (document_search, rowid, body) "
        f"SELECT 'delete', seq, substr(OLD.text, 1, {INDEXED_CHARS}) "
        "FROM documents WHERE id = OLD.document_id AND seq IS NOT NULL; END"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute("DROP TRIGGER document_contents_unindex")
    op.execute("DROP TRIGGER documents_unindex")
    op.execute(
        f"CREATE VIRTUAL TABLE document_search_copy USING fts5(body, {TOKENIZER})"
    )
    op.execute(
        "INSERT INTO document_search_copy (rowid, body) "
        "SELECT seq, body FROM document_search_text ORDER BY seq"
    )
    op.execute("DROP TABLE document_search")
    op.execute("DROP VIEW document_search_text")
    op.execute("ALTER TABLE document_search_copy RENAME TO document_search")
    op.execute(
        "CREATE TRIGGER documents_unindex AFTER DELETE ON documents "
        "WHEN OLD.seq IS NOT NULL BEGIN "
        "DELETE FROM document_search WHERE rowid = OLD.seq; END"
    )
