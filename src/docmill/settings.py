"""
Every knob docmill has, in one typed place.

Each field reads from an environment variable named ``DOCMILL_`` plus the field
name in upper case; the CLI flags of ``docmill serve`` and ``docmill worker``
write into the same fields, so a flag and a variable can never disagree.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from importlib.util import find_spec
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from docmill.extract.base import Limits
from docmill.extract_settings import (
    JOB_MEMORY_MB,
    JOB_TIMEOUT_SECONDS,
    ExtractSettings,
)

# The schemes people write for docmill's two databases (as libpq, Heroku and
# most hosting pages spell them), and the async driver docmill runs each on:
# SQLAlchemy read a bare postgresql:// as a blocking driver and failed with a
# traceback.
ASYNC_SCHEMES = {
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgres+asyncpg": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
}
POSTGRES_EXTRA = "pip install 'docmill[postgres]'"
# What a refused URL is told to use instead.
SUPPORTED_SCHEMES = (
    "use sqlite:// or postgresql:// (also written sqlite+aiosqlite://, "
    "postgres:// or postgresql+asyncpg://)"
)


def async_database_url(url: str) -> str:
    """
    ``url`` on the driver docmill uses for its database.

    Raises:
        ValueError: the URL is not a database URL, or one on a database or
            driver docmill does not run on, or it is PostgreSQL's and asyncpg
            is not installed.
    """
    scheme, separator, rest = url.partition("://")
    if not separator or not re.fullmatch(r"[\w+]+", scheme):
        # Not echoed: what was given may be a password put in the wrong place.
        raise ValueError(f"not a database URL; {SUPPORTED_SCHEMES}")
    scheme = scheme.lower()
    scheme = ASYNC_SCHEMES.get(scheme, scheme)
    url = f"{scheme}{separator}{rest}"
    # Any other database, or a blocking driver (psycopg, pysqlite), got as
    # far as the engine and failed there with a traceback. The scheme is
    # shown; the rest of the URL may hold a password.
    if scheme not in ("sqlite+aiosqlite", "postgresql+asyncpg"):
        given = f"{scheme!r} is not a database and driver docmill runs on"
        raise ValueError(f"{given}; {SUPPORTED_SCHEMES}")
    if scheme == "postgresql+asyncpg":
        if find_spec("asyncpg") is None:
            raise ValueError(
                "PostgreSQL needs the asyncpg driver, which is not installed: "
                f"install docmill's postgres extra ({POSTGRES_EXTRA})"
            )
        try:
            # Reading it checks it: the engine's own parse raised the same
            # ValueError, as a traceback.
            port = urlsplit(url).port
        except ValueError:
            port = -1
        if port is not None and not 0 <= port <= 65535:
            raise ValueError(
                "the port in the database URL is not a number from 0 to 65535"
            )
        url = _asyncpg_ssl(url)
    return url


def _asyncpg_ssl(url: str) -> str:
    """
    ``sslmode=`` (libpq's name, in URLs copied from psql or a hosting page)
    as ``ssl=``, asyncpg's name for the same modes; asyncpg refused the
    connection with a TypeError for the unknown keyword.
    """
    base, question, query = url.partition("?")
    if not question:
        return url
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(key == "sslmode" for key, _ in pairs):
        return url
    has_ssl = any(key == "ssl" for key, _ in pairs)
    renamed = [
        ("ssl", value) if key == "sslmode" else (key, value)
        for key, value in pairs
        if not (key == "sslmode" and has_ssl)
    ]
    return f"{base}?{urlencode(renamed)}"


class Settings(BaseSettings):
    """docmill's configuration."""

    # Only the environment is read. `docmill extract` relies on that to skip
    # this class when no DOCMILL_ variable is set (docmill.extract_settings):
    # a dotenv or secrets source added here must be checked there too.
    model_config = SettingsConfigDict(env_prefix="DOCMILL_", extra="ignore")

    data_dir: Path = Field(
        Path("docmill-data"),
        description="Where the embedded database and stored originals live.",
    )
    database_url: str | None = Field(
        None,
        description=(
            "SQLAlchemy URL of the database. Default: SQLite in the data directory. "
            "PostgreSQL: postgresql://user@host/db (run on asyncpg)."
        ),
    )
    db_max_connections: int = Field(
        50,
        ge=3,
        description=(
            "Most connections one docmill process (an API or a worker) opens "
            "to PostgreSQL. Size PostgreSQL's max_connections for the sum over "
            "every process. Not used on SQLite."
        ),
    )
    storage: Literal["auto", "local", "database"] = Field(
        "auto",
        description=(
            "Where originals are kept: files in the data directory (local) or "
            "the database itself (database), so workers need no shared disk. "
            "auto: local on SQLite, database otherwise."
        ),
    )
    host: str = Field("127.0.0.1", description="Address the API binds to.")
    port: int = Field(8000, ge=0, le=65535, description="Port the API listens on.")
    workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=0,
        description="Extraction slots run inside `serve` (0: API only).",
    )
    lease_seconds: float = Field(
        30.0, gt=0, description="How long a claim lasts without renewal."
    )
    poll_seconds: float = Field(
        0.5, gt=0, description="How often an idle worker looks for work."
    )
    job_timeout_seconds: float = Field(
        JOB_TIMEOUT_SECONDS,
        gt=0,
        description="Wall-clock limit for one document's extraction.",
    )
    job_memory_mb: int = Field(
        JOB_MEMORY_MB,
        ge=0,
        description="Address-space cap of an extraction child in MiB (0: none).",
    )
    max_attempts: int = Field(
        3, ge=1, description="Tries before a retryable failure becomes final."
    )
    retry_base_seconds: float = Field(
        2.0, ge=0, description="First retry delay; doubles each attempt, jittered."
    )
    shutdown_grace_seconds: float = Field(
        10.0,
        ge=0,
        description="On SIGTERM, how long running extractions may finish.",
    )
    max_upload_bytes: int = Field(
        512 * 1024 * 1024, gt=0, description="Largest accepted original, in bytes."
    )
    upload_timeout_seconds: float = Field(
        3600.0,
        gt=0,
        description=(
            "Longest an original may take to reach storage (an upload, a URL "
            "fetch); staging older than twice this or the job limit, whichever "
            "is longer (at most plus 10 minutes), is swept."
        ),
    )
    max_text_chars: int = Field(
        Limits.max_text_chars,
        gt=0,
        description="Extracted text is cut past this length.",
    )
    max_result_chars: int = Field(
        Limits.max_result_chars,
        gt=0,
        description=(
            "Most characters of one document's result: its metadata's strings, "
            "text, Markdown and pages and those of the documents embedded in "
            "it, together; what comes past it is cut, in that order."
        ),
    )
    max_archive_depth: int = Field(
        Limits.max_archive_depth,
        ge=0,
        description="How deep archives and attachments are followed.",
    )
    max_archive_members: int = Field(
        Limits.max_archive_members,
        ge=0,
        description=(
            "An archive with more members, or a mail message with more "
            "attachments, than this is refused whole."
        ),
    )
    max_unpacked_bytes: int = Field(
        Limits.max_unpacked_bytes,
        gt=0,
        description=(
            "Most bytes unpacked from one document: a zip archive's members, "
            "the archives nested in it and the parts of every office package "
            "in it or in a mail, counted together."
        ),
    )
    extractor_plugins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "Python modules imported in every extraction process; each may "
            "register extractors for more formats."
        ),
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Lowest level logged."
    )
    max_pending: int = Field(
        100_000,
        ge=0,
        description=(
            "Submissions are refused with 429 while more documents than this "
            "are pending (0: no limit)."
        ),
    )
    fetch_timeout_seconds: float = Field(
        30.0, gt=0, description="Time limit for fetching a submitted URL."
    )
    fetch_max_redirects: int = Field(
        5, ge=0, description="Most redirects followed when fetching a URL."
    )
    fetch_concurrency: int = Field(
        8,
        ge=1,
        description=(
            "Submitted URLs one worker fetches at once, apart from its "
            "extraction slots."
        ),
    )
    fetch_allow_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "Networks (CIDR), a JSON list or separated by commas, that URL "
            "fetches and webhooks may reach although they are private, "
            "loopback or link-local."
        ),
    )
    webhook_url: str | None = Field(
        None,
        description="Receives every document's completed or failed event.",
    )
    webhook_secret: str | None = Field(
        None,
        description=(
            "Key of the HMAC-SHA256 signature on webhook deliveries "
            "(Docmill-Signature header); unsigned when unset."
        ),
    )
    webhook_max_attempts: int = Field(
        8, ge=1, description="Tries of one webhook delivery before it gives up."
    )
    webhook_retry_base_seconds: float = Field(
        5.0, ge=0, description="First webhook retry delay; doubles each attempt."
    )
    webhook_timeout_seconds: float = Field(
        10.0, gt=0, description="Time limit for one webhook delivery."
    )
    auth: Literal["auto", "on", "off"] = Field(
        "auto",
        description=(
            "API keys required (on), not (off), or auto: off only when the API "
            "is bound to a loopback address, on otherwise."
        ),
    )
    metrics_public: bool = Field(
        False,
        description=(
            "Serve /metrics without an API key even when keys are required, "
            "for a scraper on a trusted network; otherwise give the scraper a "
            "key of its own."
        ),
    )
    rate_limit: str = Field(
        # Per second, so a client polling a few documents never meets it but
        # a runaway loop does; a per-minute window would block for a minute.
        "100/second",
        description=(
            "Requests allowed per API key (per client IP without auth), in the "
            "`limits` notation such as 100/minute; empty: no limit."
        ),
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "Proxy addresses or networks (CIDR), a JSON list or separated by "
            "commas, whose X-Forwarded-For and X-Forwarded-Proto headers name "
            "the client; "
            "empty: those headers are ignored, and every request is the "
            "address that connected."
        ),
    )
    redis_url: str | None = Field(
        None,
        description=(
            "Redis for shared rate-limit counters across API processes, e.g. "
            "redis://127.0.0.1:6379 (needs the `redis` extra); memory otherwise."
        ),
    )

    @field_validator("data_dir", mode="before")
    @classmethod
    def _data_dir_named(cls, value: object) -> object:
        # Before conversion: Path("") is the current directory, so
        # `DOCMILL_DATA_DIR=` (an unset shell variable, say) silently put the
        # database and originals wherever docmill happened to start.
        if isinstance(value, str) and not value.strip():
            raise ValueError(
                "must not be empty; unset it for the default (docmill-data), "
                "or give . for the current directory"
            )
        return value

    @field_validator("database_url")
    @classmethod
    def _async_database_url(cls, value: str | None) -> str | None:
        # `DOCMILL_DATABASE_URL=` (set, but to nothing) meant the default
        # SQLite database to some code and a URL to other code: the admin
        # verbs created a stray ./docmill-data/docmill.db, then said its
        # schema was missing.
        if not value:
            return None
        return async_database_url(value)

    @field_validator(
        "extractor_plugins", "fetch_allow_networks", "trusted_proxies", mode="before"
    )
    @classmethod
    def _list_from_text(cls, value: object) -> object:
        # From the environment: a JSON list, or the entries separated by
        # commas (`DOCMILL_TRUSTED_PROXIES=10.0.0.1`); anything but a JSON
        # list was a pydantic-settings traceback.
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except ValueError:
                raise ValueError("not a JSON list of strings") from None
        return [entry.strip() for entry in text.split(",") if entry.strip()]

    @field_validator("extractor_plugins")
    @classmethod
    def _importable(cls, value: list[str]) -> list[str]:
        # A module that is not there failed every document as worker_crash,
        # three attempts each, with the cause only in the server's log.
        for name in value:
            try:
                found = find_spec(name) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                raise ValueError(f"no module named {name!r} can be imported")
        return value

    @field_validator("rate_limit")
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        if value.strip():
            from limits import parse_many

            try:
                parse_many(value)
            except ValueError:
                raise ValueError(
                    f"{value!r} is not a limit such as 100/second or 1000/minute"
                ) from None
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_installed(cls, value: str | None) -> str | None:
        if value and find_spec("redis") is None:
            raise ValueError(
                "Redis needs the redis client, which is not installed: install "
                "docmill's redis extra (pip install 'docmill[redis]')"
            )
        return value

    @field_validator("trusted_proxies", "fetch_allow_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        # uvicorn would take a word it cannot parse as a literal host name
        # and silently trust nothing (or the wrong thing); say so at start.
        # A bad allow-list entry failed every URL submission and webhook
        # instead, with a traceback in the worker's log.
        for entry in value:
            ipaddress.ip_network(entry, strict=False)
        return value

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir.resolve() / 'docmill.db'}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @property
    def auth_required(self) -> bool:
        if self.auth == "auto":
            return self.host not in ("127.0.0.1", "localhost", "::1")
        return self.auth == "on"

    @property
    def uses_database_storage(self) -> bool:
        if self.storage == "auto":
            return not self.is_sqlite
        return self.storage == "database"

    @property
    def staging_max_age_seconds(self) -> float:
        """
        Age past which staging, or a worker's scratch copy of an original,
        is left by a dead process: the upload limit (or the job time limit,
        if longer), plus room for clock skew between machines and a last
        chunk in flight (as long again, at most 10 minutes). Every process
        sharing the database must have the same limits or less.
        """
        limit = max(self.upload_timeout_seconds, self.job_timeout_seconds)
        return limit + min(limit, 600)

    @property
    def originals_dir(self) -> Path:
        return self.data_dir / "originals"

    def extraction_limits(self) -> Limits:
        return Limits(
            max_text_chars=self.max_text_chars,
            max_result_chars=self.max_result_chars,
            max_archive_depth=self.max_archive_depth,
            max_archive_members=self.max_archive_members,
            max_unpacked_bytes=self.max_unpacked_bytes,
        )

    def extract_settings(self) -> ExtractSettings:
        # Reads EXTRACTION_FIELDS only; a field read here belongs there.
        return ExtractSettings(
            limits=self.extraction_limits(),
            job_timeout_seconds=self.job_timeout_seconds,
            job_memory_mb=self.job_memory_mb,
            extractor_plugins=self.extractor_plugins,
        )


# What ``Settings.extract_settings`` reads: all that `docmill extract` uses.
EXTRACTION_FIELDS = frozenset(
    {
        "max_text_chars",
        "max_result_chars",
        "max_archive_depth",
        "max_archive_members",
        "max_unpacked_bytes",
        "job_timeout_seconds",
        "job_memory_mb",
        "extractor_plugins",
    }
)


def extraction_settings(**given: Any) -> ExtractSettings:
    """
    The extraction settings of the environment, with ``given`` on top.

    Only the fields extract reads are validated: a server's setting left in
    the environment (an empty ``DOCMILL_DATA_DIR``, a database URL docmill
    cannot run on) refused `docmill extract`, which never reads it.

    Raises:
        ValidationError: an extraction setting is invalid.
    """
    try:
        return Settings(**given).extract_settings()
    except ValidationError as exc:
        unread = {str(error["loc"][0]) for error in exc.errors() if error["loc"]}
        unread -= EXTRACTION_FIELDS
        if not unread:
            raise
    # Arguments take precedence over the environment: the unread fields at
    # their defaults leave the errors, if any, of the fields extract reads.
    defaults = {
        name: Settings.model_fields[name].get_default(call_default_factory=True)
        for name in unread
    }
    return Settings(**given, **defaults).extract_settings()
