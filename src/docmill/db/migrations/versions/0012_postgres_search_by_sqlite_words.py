"""PostgreSQL's search entries hold the words SQLite's index holds

Revision ID: 0012
Revises: 0011

PostgreSQL's entries were ``strip(to_tsvector('simple', text))``, whose
parser keeps ``bob@example.com`` as one word, turns ``INV-2024-0042`` into
``inv``, ``-2024`` and ``-0042`` and keeps accents, while SQLite's index and
every query split text into runs of letters and digits, case folded and
without diacritics: the same documents were found on SQLite and missed on
PostgreSQL. An entry is now the distinct words of its text by SQLite's rule
(``search.text_words``), as a tsvector without positions.

Upgrading rebuilds every PostgreSQL entry from its document's stored text,
cut where indexing cuts it, ``BATCH`` documents a statement, in the
migration's one transaction: about 0.3 s of this process's CPU and as much
of the server's per 1,000 documents of the test corpus (8,500 characters on
average), 0.6-0.85 s of wall time. (Dropping the GIN index first and
building it again at the end was no faster at 5,000 documents.) An entry
whose document has no stored text (none is made so) keeps its old words.
Downgrading makes every entry again by PostgreSQL's parser, in one
statement (about 1.1 s of the server's CPU per 1,000).

SQLite keeps its schema and its index: its rule is the one now shared.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from docmill.queue.search import text_words

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

INDEXED_CHARS = 500_000
# Texts held in memory at once: up to BATCH times INDEXED_CHARS characters.
BATCH = 100

_TEXTS = sa.text(
    "SELECT document_search.document_id AS id, "
    f"substr(document_contents.text, 1, {INDEXED_CHARS}) AS body "
    "FROM document_search JOIN document_contents "
    "ON document_contents.document_id = document_search.document_id "
    "WHERE document_search.document_id > :after "
    "ORDER BY document_search.document_id LIMIT :batch"
)
_REINDEX = sa.text(
    "UPDATE document_search SET body = array_to_tsvector(CAST(:words AS text[])) "
    "WHERE document_id = :id"
)


def upgrade() -> None:
    connection = op.get_bind()
    if connection.dialect.name == "sqlite":
        return
    after = ""
    while True:
        rows = connection.execute(_TEXTS, {"after": after, "batch": BATCH}).all()
        if not rows:
            break
        connection.execute(
            _REINDEX, [{"id": row.id, "words": text_words(row.body)} for row in rows]
        )
        after = rows[-1].id


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    op.execute(
        "UPDATE document_search SET body = strip(to_tsvector('simple', "
        f"substr(document_contents.text, 1, {INDEXED_CHARS}))) "
        "FROM document_contents "
        "WHERE document_contents.document_id = document_search.document_id"
    )
