"""parsers belong to the key that saved them

Revision ID: 0007
Revises: 0006

Until 0006 a parser name meant one parser for every caller, so with API keys
on, any key could overwrite or delete the rules another key's documents are
parsed by. Parsers now carry ``owner``: the id of the key that saved them,
or ``''`` for the shared ones, saved with auth off or by the operator's
``docmill parsers apply``. The primary key becomes (owner, name, version),
so two keys may each have a parser of the same name. Existing parsers become
shared: readable by every key, changeable by none through the API.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # SQLite cannot change a primary key in place: build the table anew.
        op.execute(
            "CREATE TABLE parsers_new ("
            "owner VARCHAR(64) NOT NULL DEFAULT '', "
            "name VARCHAR(200) NOT NULL, "
            "version INTEGER NOT NULL, "
            "description TEXT, "
            "rules JSON NOT NULL, "
            "created_at DATETIME NOT NULL, "
            "PRIMARY KEY (owner, name, version))"
        )
        op.execute(
            "INSERT INTO parsers_new (owner, name, version, description, rules, "
            "created_at) SELECT '', name, version, description, rules, created_at "
            "FROM parsers"
        )
        op.execute("DROP TABLE parsers")
        op.execute("ALTER TABLE parsers_new RENAME TO parsers")
        return
    op.add_column(
        "parsers",
        sa.Column("owner", sa.String(length=64), nullable=False, server_default=""),
    )
    op.drop_constraint("parsers_pkey", "parsers", type_="primary")
    op.create_primary_key("parsers_pkey", "parsers", ["owner", "name", "version"])


def downgrade() -> None:
    # Only the shared parsers fit the old table: a key's parser could clash
    # with a shared one of the same name and version.
    op.execute("DELETE FROM parsers WHERE owner <> ''")
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "CREATE TABLE parsers_old ("
            "name VARCHAR(200) NOT NULL, "
            "version INTEGER NOT NULL, "
            "description TEXT, "
            "rules JSON NOT NULL, "
            "created_at DATETIME NOT NULL, "
            "PRIMARY KEY (name, version))"
        )
        op.execute(
            "INSERT INTO parsers_old SELECT name, version, description, rules, "
            "created_at FROM parsers"
        )
        op.execute("DROP TABLE parsers")
        op.execute("ALTER TABLE parsers_old RENAME TO parsers")
        return
    op.drop_constraint("parsers_pkey", "parsers", type_="primary")
    op.drop_column("parsers", "owner")
    op.create_primary_key("parsers_pkey", "parsers", ["name", "version"])
