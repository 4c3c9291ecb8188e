"""search index in queue order on SQLite

Revision ID: 0006
Revises: 0005

A search lists its matches newest first. FTS5 can hand matches over in the
order of its rowid without looking at the rest, but the rowids of the 0004
table were arbitrary, so a common word meant collecting and sorting every
match. On SQLite, documents now carry ``seq``, numbered in the order they are
queued (a trigger numbers each new row), and the search entry of a document
has its ``seq`` as rowid. A trigger also drops the entry with its document,
as the foreign key does on PostgreSQL, and finding a document's entry no
longer scans the whole index (its ``document_id`` column had no index).

PostgreSQL keeps its schema: its search picks its plan at query time
(``docmill.queue.search``).
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TOKENIZER = "tokenize='unicode61 remove_diacritics 2'"


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute("ALTER TABLE documents ADD COLUMN seq INTEGER")
    # Existing documents are numbered in the order lists show them, so a
    # search pages through them exactly as a plain list does.
    op.execute(
        "UPDATE documents SET seq = numbered.n FROM ("
        "SELECT id, row_number() OVER (ORDER BY created_at, id) AS n FROM documents"
        ") AS numbered WHERE documents.id = numbered.id"
    )
    op.execute("CREATE UNIQUE INDEX ix_documents_seq ON documents (seq)")
    op.execute(
        f"CREATE VIRTUAL TABLE document_search_new USING fts5(body, {TOKENIZER})"
    )
    # Entries of documents deleted before 0006 (a delete could miss one
    # only by crashing) are left behind here.
    op.execute(
        "INSERT INTO document_search_new (rowid, body) "
        "SELECT documents.seq, document_search.body FROM document_search "
        "JOIN documents ON documents.id = document_search.document_id "
        "ORDER BY documents.seq"
    )
    op.execute("DROP TABLE document_search")
    op.execute("ALTER TABLE document_search_new RENAME TO document_search")

    # SQLite has one writer at a time, so max + 1 cannot be taken twice.
    op.execute(
        "CREATE TRIGGER documents_number AFTER INSERT ON documents "
        "WHEN NEW.seq IS NULL BEGIN "
        "UPDATE documents SET seq = (SELECT coalesce(max(seq), 0) + 1 FROM documents) "
        "WHERE rowid = NEW.rowid; END"
    )
    op.execute(
        "CREATE TRIGGER documents_unindex AFTER DELETE ON documents "
        "WHEN OLD.seq IS NOT NULL BEGIN "
        "DELETE FROM document_search WHERE rowid = OLD.seq; END"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    # The triggers name document_search, which is about to be replaced.
    op.execute("DROP TRIGGER documents_unindex")
    op.execute("DROP TRIGGER documents_number")
    op.execute(
        "CREATE VIRTUAL TABLE document_search_old USING fts5("
        f"document_id UNINDEXED, body, {TOKENIZER})"
    )
    op.execute(
        "INSERT INTO document_search_old (document_id, body) "
        "SELECT documents.id, document_search.body FROM document_search "
        "JOIN documents ON documents.seq = document_search.rowid"
    )
    op.execute("DROP TABLE document_search")
    op.execute("ALTER TABLE document_search_old RENAME TO document_search")
    op.execute("DROP INDEX ix_documents_seq")
    op.execute("ALTER TABLE documents DROP COLUMN seq")
