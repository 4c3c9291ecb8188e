"""
Parsers and the fields they produced, in the database.

Every statement about parsing rules lives here, as the job store holds every
statement about jobs. A save never overwrites: it adds the next version, so
stored fields always name the exact rules that made them.

Parsers have owners as documents do. A key's parsers are its own: no other
key can read, change or delete them. Shared parsers (owner ``''``) are those
saved with auth off or by the operator's CLI; every key may use them, and a
key's own parser of the same name hides the shared one from that key.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from docmill.db.engine import write_transaction
from docmill.db.models import Document, DocumentFields, Parser
from docmill.parsing.errors import ParserExists, ParserNotFound
from docmill.parsing.rules import ParserSpec

logger = logging.getLogger(__name__)


SHARED = ""


def _namespace(owner: str | None) -> str:
    return SHARED if owner is None else owner


@dataclass(frozen=True)
class ParserRecord:
    name: str
    version: int
    description: str | None
    rules: dict[str, Any]
    created_at: datetime
    owner: str = SHARED

    @property
    def shared(self) -> bool:
        return self.owner == SHARED

    @property
    def spec(self) -> ParserSpec:
        return ParserSpec.model_validate(self.rules)

    def request(self, **document: Any) -> dict[str, Any]:
        """What the extraction child needs to run this parser."""
        return {
            "name": self.name,
            "version": self.version,
            "rules": self.rules,
        } | document


class ParserStore:
    """
    Parser versions and document fields.

    Args:
        engine: the same engine the job store uses.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def save(
        self, spec: ParserSpec, owner: str | None = None, *, create: bool = False
    ) -> ParserRecord:
        """
        Store ``spec`` as the next version of its name, ``owner``'s own.

        With ``create``, only as version 1 of a name the owner does not see
        yet (neither its own nor a shared one), decided in the same
        transaction as the insert, so of concurrent creates one wins.

        Raises:
            ParserExists: ``create`` and the name is taken.
        """
        rules = spec.model_dump(mode="json", exclude_defaults=True)
        rules["name"] = spec.name
        namespace = _namespace(owner)
        for _attempt in range(3):
            try:
                async with write_transaction(self.engine) as connection:
                    latest = await connection.scalar(
                        select(func.max(Parser.version)).where(
                            Parser.owner == namespace, Parser.name == spec.name
                        )
                    )
                    if create and (
                        latest is not None
                        or await connection.scalar(
                            select(Parser.version)
                            .where(Parser.owner == SHARED, Parser.name == spec.name)
                            .limit(1)
                        )
                        is not None
                    ):
                        raise ParserExists(spec.name)
                    record = ParserRecord(
                        spec.name,
                        (latest or 0) + 1,
                        spec.description,
                        rules,
                        datetime.now(UTC),
                        namespace,
                    )
                    await connection.execute(
                        insert(Parser).values(
                            owner=namespace,
                            name=record.name,
                            version=record.version,
                            description=record.description,
                            rules=record.rules,
                            created_at=record.created_at,
                        )
                    )
            except IntegrityError as exc:
                # Two saves of one name raced on PostgreSQL; the loser takes
                # the version after the winner's, or, creating, lost the name.
                if create:
                    raise ParserExists(spec.name) from exc
                continue
            logger.info(
                "parser %s saved as version %d",
                record.name,
                record.version,
                extra={"action": "parser_saved", "parser": record.name},
            )
            return record
        raise RuntimeError(f"could not save parser {spec.name!r}: too many races")

    async def get(
        self, name: str, version: int | None = None, owner: str | None = None
    ) -> ParserRecord:
        """
        The newest version of ``name``, or the given one, as ``owner`` sees
        it: its own parser of that name if it has one, else the shared one.

        Raises:
            ParserNotFound: no such parser or version.
        """
        async with self.engine.connect() as connection:
            namespace = SHARED
            if owner is not None:
                own = await connection.scalar(
                    select(Parser.version)
                    .where(Parser.owner == owner, Parser.name == name)
                    .limit(1)
                )
                if own is not None:
                    namespace = owner
            query = select(Parser.__table__).where(
                Parser.owner == namespace, Parser.name == name
            )
            if version is not None:
                query = query.where(Parser.version == version)
            query = query.order_by(Parser.version.desc()).limit(1)
            row = (await connection.execute(query)).first()
        if row is None:
            raise ParserNotFound(name, version)
        return _record(row)

    async def list(self, owner: str | None = None) -> list[ParserRecord]:
        """The newest version of every parser ``owner`` sees, by name."""
        namespaces = [SHARED] if owner is None else [SHARED, owner]
        latest = (
            select(Parser.owner, Parser.name, func.max(Parser.version).label("v"))
            .where(Parser.owner.in_(namespaces))
            .group_by(Parser.owner, Parser.name)
        )
        query = select(Parser.__table__).where(
            tuple_(Parser.owner, Parser.name, Parser.version).in_(latest)
        )
        async with self.engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        visible: dict[str, ParserRecord] = {}
        for row in rows:
            # The caller's own parser hides a shared one of the same name.
            if row.name not in visible or row.owner != SHARED:
                visible[row.name] = _record(row)
        return [visible[name] for name in sorted(visible)]

    async def delete(self, name: str, owner: str | None = None) -> None:
        """
        Remove every version of ``owner``'s parser ``name`` (a shared one
        when ``owner`` is None); fields it produced stay.

        Raises:
            ParserNotFound: ``owner`` has no such parser.
        """
        async with write_transaction(self.engine) as connection:
            result = await connection.execute(
                delete(Parser).where(
                    Parser.owner == _namespace(owner), Parser.name == name
                )
            )
        if not result.rowcount:
            raise ParserNotFound(name)

    async def request_for(self, document_id: str) -> dict[str, Any] | None:
        """
        The child's parse request for a document submitted with a parser;
        None for a document without one.

        Raises:
            ParserNotFound: the document names a parser that no longer exists
                (as its owner sees it): one deleted after the submission.
        """
        async with self.engine.connect() as connection:
            row = (
                await connection.execute(
                    select(
                        Document.parser,
                        Document.owner,
                        Document.filename,
                        Document.title,
                        Document.user_metadata,
                    ).where(Document.id == document_id)
                )
            ).first()
        if row is None or row.parser is None:
            return None
        # Resolved as the document's owner would see it, so a document is
        # never parsed by another key's rules of the same name.
        record = await self.get(row.parser, owner=row.owner)
        return record.request(
            filename=row.filename, title=row.title, user_metadata=row.user_metadata
        )

    async def save_fields(self, document_id: str, parsed: dict[str, Any]) -> None:
        """Store one parser run's output, replacing that parser's last run."""
        async with write_transaction(self.engine) as connection:
            await connection.execute(
                delete(DocumentFields).where(
                    DocumentFields.document_id == document_id,
                    DocumentFields.parser == parsed["parser"],
                )
            )
            await connection.execute(
                insert(DocumentFields).values(
                    document_id=document_id,
                    parser=parsed["parser"],
                    parser_version=parsed["parser_version"],
                    fields=parsed["fields"],
                    errors=parsed["errors"],
                    matches=parsed.get("matches"),
                    created_at=datetime.now(UTC),
                    document_created_at=select(Document.created_at)
                    .where(Document.id == document_id)
                    .scalar_subquery(),
                )
            )

    async def get_fields(
        self, document_id: str, parser: str | None = None
    ) -> Any | None:
        """The newest parser run on a document (of ``parser``, if named)."""
        query = select(DocumentFields.__table__).where(
            DocumentFields.document_id == document_id
        )
        if parser is not None:
            query = query.where(DocumentFields.parser == parser)
        query = query.order_by(DocumentFields.created_at.desc()).limit(1)
        async with self.engine.connect() as connection:
            return (await connection.execute(query)).first()

    async def export(
        self, parser: str, batch: int = 500, owner: str | None = None
    ) -> AsyncIterator[Any]:
        """
        Every document's fields from ``parser``, oldest document first; only
        ``owner``'s documents when given.

        Reads in keyset-paginated batches, so an export of a million rows
        holds one batch in memory and no transaction open between batches.
        """
        after: tuple[datetime, str] | None = None
        while True:
            query = (
                select(
                    Document.id,
                    Document.filename,
                    Document.title,
                    Document.created_at,
                    DocumentFields.parser_version,
                    DocumentFields.fields,
                    DocumentFields.errors,
                )
                .join(DocumentFields, DocumentFields.document_id == Document.id)
                .where(DocumentFields.parser == parser)
                # The run's copy of its document's date and id: the parser's
                # index gives them in this order (migration 0010).
                .order_by(
                    DocumentFields.document_created_at, DocumentFields.document_id
                )
                .limit(batch)
            )
            if owner is not None:
                query = query.where(Document.owner == owner)
            if after is not None:
                # Spelled out rather than as a row-value comparison, so the
                # timestamp is bound through the column's UTC type.
                query = query.where(
                    or_(
                        DocumentFields.document_created_at > after[0],
                        and_(
                            DocumentFields.document_created_at == after[0],
                            DocumentFields.document_id > after[1],
                        ),
                    )
                )
            async with self.engine.connect() as connection:
                rows = (await connection.execute(query)).all()
            for row in rows:
                yield row
            if len(rows) < batch:
                return
            after = (rows[-1].created_at, rows[-1].id)


def _record(row: Any) -> ParserRecord:
    return ParserRecord(
        row.name, row.version, row.description, row.rules, row.created_at, row.owner
    )
