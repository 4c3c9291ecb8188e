"""
API keys: created, listed, revoked and checked here, stored hashed.

A token is ``dm_<id>_<secret>``. The id is public and finds the row; the
secret (32 random bytes) is kept only as its SHA-256, which is enough for a
secret of that strength and costs nothing per request, unlike a password
hash. A leaked database therefore yields no usable key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from docmill.db.engine import write_transaction
from docmill.db.models import ApiKey
from docmill.queue.store import utcnow

TOKEN_PREFIX = "dm"
# last_used_at is a hint for operators, not an audit log: one write per key
# per interval keeps the request path read-only.
LAST_USED_RESOLUTION = timedelta(minutes=1)
# The column's width (varchar(200) on PostgreSQL).
MAX_NAME_CHARS = 200


@dataclass(frozen=True)
class NewKey:
    id: str
    name: str
    token: str


def name_problem(name: str) -> str | None:
    """What is wrong with ``name`` for a key, or None when it will do."""
    if not name.strip():
        return "a key's name must not be empty"
    if len(name) > MAX_NAME_CHARS:
        return f"a key's name has at most {MAX_NAME_CHARS} characters, not {len(name)}"
    if not name.isprintable():
        # `keys list` shows one key a line, the name last.
        return "a key's name must be one line of printable characters"
    return None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class KeyStore:
    """The ``api_keys`` table."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create(self, name: str) -> NewKey:
        """
        Make a key; its token is returned here and never again.

        Raises:
            ValueError: ``name`` is empty, too long or not one printable line.
        """
        problem = name_problem(name)
        if problem is not None:
            raise ValueError(problem)
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        async with write_transaction(self.engine) as connection:
            await connection.execute(
                insert(ApiKey).values(
                    id=key_id,
                    name=name,
                    secret_sha256=_digest(secret),
                    created_at=utcnow(),
                )
            )
        return NewKey(key_id, name, f"{TOKEN_PREFIX}_{key_id}_{secret}")

    async def list(self) -> Sequence[Any]:
        async with self.engine.connect() as connection:
            rows: Sequence[Any] = (
                await connection.execute(
                    select(
                        ApiKey.id,
                        ApiKey.name,
                        ApiKey.created_at,
                        ApiKey.revoked_at,
                        ApiKey.last_used_at,
                    ).order_by(ApiKey.created_at, ApiKey.id)
                )
            ).all()
        return rows

    async def revoke(self, key_id: str) -> bool:
        """Revoke a key at once; False if no active key has this id."""
        async with write_transaction(self.engine) as connection:
            result = await connection.execute(
                update(ApiKey)
                .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
        return bool(result.rowcount)

    async def verify(self, token: str) -> str | None:
        """The id of the active key ``token`` belongs to, or None."""
        prefix, _, rest = token.partition("_")
        key_id, _, secret = rest.partition("_")
        if prefix != TOKEN_PREFIX or not key_id or not secret or len(key_id) > 32:
            return None
        async with self.engine.connect() as connection:
            row = (
                await connection.execute(
                    select(ApiKey.secret_sha256, ApiKey.last_used_at).where(
                        ApiKey.id == key_id, ApiKey.revoked_at.is_(None)
                    )
                )
            ).first()
        if row is None or not hmac.compare_digest(row.secret_sha256, _digest(secret)):
            return None
        now = utcnow()
        if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
            async with write_transaction(self.engine) as connection:
                await connection.execute(
                    update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=now)
                )
        return key_id
