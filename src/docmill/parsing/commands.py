"""
``docmill parsers ...`` and ``docmill parse``: parsing rules from the shell.

``parsers apply`` stores rule files in the service's database, as ``PUT
/parsers/{name}`` does. ``parse --rules FILE DOC...`` needs no server: it
extracts each file in the same killable child process the workers use and
prints what the rules found, with where they matched, as JSON Lines.
"""

# Annotations here are evaluated when a command is defined, not kept as text
# (no `from __future__ import annotations`): Typer reads the annotations of
# every command at each start, and each one kept as text costs it an eval.

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from docmill._cli_values import PlainGroup, SettingsHelp, settings_help

if TYPE_CHECKING:
    from docmill.settings import Settings

parsers_app = typer.Typer(
    cls=PlainGroup, help="Parsing rules stored in the database.", no_args_is_help=True
)


def _settings(data_dir: Path | None, database_url: str | None) -> "Settings":
    from docmill.settings import Settings

    given: dict[str, Any] = {"data_dir": data_dir, "database_url": database_url}
    return Settings(**{k: v for k, v in given.items() if v is not None})


def _load(path: Path) -> Any:
    from docmill.parsing.errors import InvalidRules
    from docmill.parsing.rules import load_spec

    try:
        return load_spec(path.read_text(encoding="utf-8"), path.name)
    except InvalidRules as exc:
        for error in exc.errors:
            typer.echo(
                f"{path}: {error['path'] or '(top)'}: {error['message']}", err=True
            )
        raise typer.Exit(1) from exc


@parsers_app.command("apply", cls=SettingsHelp)
def apply(
    files: list[Path] = typer.Argument(
        ..., metavar="FILES", help="Parser files, YAML or JSON."
    ),
    data_dir: Path | None = typer.Option(None, help=settings_help("data_dir")),
    database_url: str | None = typer.Option(None, help=settings_help("database_url")),
) -> None:
    """Validate each file and store it as the next version of its shared parser."""
    from docmill.parsing.store import ParserStore

    specs = [_load(path) for path in files]

    async def save(services: Any) -> list[Any]:
        # The database must be there already, as for every admin verb: made
        # here, in a directory no server reads, the parser was stored where
        # nobody would find it (and on PostgreSQL this ran the migrations).
        store = ParserStore(services.engine)
        return [await store.save(spec) for spec in specs]

    for record in _admin(data_dir, database_url, save):
        typer.echo(f"{record.name}: version {record.version}")


@parsers_app.command("list", cls=SettingsHelp)
def list_parsers(
    data_dir: Path | None = typer.Option(None, help=settings_help("data_dir")),
    database_url: str | None = typer.Option(None, help=settings_help("database_url")),
) -> None:
    """Name, newest version and field names of every shared parser."""
    from docmill.parsing.store import ParserStore

    records = _admin(
        data_dir, database_url, lambda services: ParserStore(services.engine).list()
    )
    for record in records:
        names = ", ".join(record.rules.get("fields", {}))
        typer.echo(f"{record.name}\tv{record.version}\t{names}")


@parsers_app.command("delete", cls=SettingsHelp)
def delete_parser(
    name: str = typer.Argument(
        ..., metavar="NAME", help="The shared parser to remove."
    ),
    data_dir: Path | None = typer.Option(None, help=settings_help("data_dir")),
    database_url: str | None = typer.Option(None, help=settings_help("database_url")),
) -> None:
    """Remove every version of a shared parser; fields it produced stay."""
    from docmill.parsing.errors import ParserNotFound
    from docmill.parsing.store import ParserStore

    async def delete(services: Any) -> bool:
        try:
            await ParserStore(services.engine).delete(name)
        except ParserNotFound:
            return False
        return True

    if not _admin(data_dir, database_url, delete):
        typer.echo(f"no shared parser {name!r}", err=True)
        raise typer.Exit(1)
    typer.echo(f"parser {name} deleted", err=True)


def _admin(data_dir: Path | None, database_url: str | None, operation: Any) -> Any:
    """Run ``operation(services)`` on the database, or say what to run first."""
    from docmill.runtime import DatabaseNotReady, run_admin

    try:
        return run_admin(_settings(data_dir, database_url), operation)
    except DatabaseNotReady as exc:
        typer.echo(f"docmill: {exc}", err=True)
        raise typer.Exit(2) from None


def parse(
    documents: list[Path] = typer.Argument(
        ..., metavar="DOCUMENTS", help="Files to parse."
    ),
    rules: Path = typer.Option(..., "--rules", help="A parser file, YAML or JSON."),
) -> None:
    """
    Run a parser file over documents, locally; one JSON line per document.

    Each line has the fields, fields_errors and, per field, where it
    matched. Exits 1 if any document could not be read or has a field error.
    """
    import asyncio

    from docmill.settings import Settings

    spec = _load(rules)
    failed = asyncio.run(_parse_all(spec, documents, Settings()))
    raise typer.Exit(1 if failed else 0)


async def _parse_all(spec: Any, documents: list[Path], settings: "Settings") -> int:
    import asyncio

    from docmill.exceptions import ExtractionError
    from docmill.extract.child import ExtractionChild
    from docmill.parsing.engine import parse_payload

    request = {
        "name": spec.name,
        "version": 0,
        "rules": spec.model_dump(mode="json", exclude_defaults=True)
        | {"name": spec.name},
    }
    child = ExtractionChild(
        settings.extraction_limits(), settings.job_memory_mb, settings.extractor_plugins
    )
    failed = 0
    try:
        for path in documents:
            line: dict[str, Any] = {"file": str(path)}
            try:
                payload = await child.extract(
                    path, path.name, settings.job_timeout_seconds
                )
            except ExtractionError as exc:
                failed += 1
                line["error"] = {"code": exc.code, "message": exc.message}
            else:
                parsed = await asyncio.to_thread(
                    parse_payload, request | {"filename": path.name}, payload, path
                )
                failed += bool(parsed["errors"])
                line |= {
                    "fields": parsed["fields"],
                    "fields_errors": parsed["errors"],
                    "matches": parsed["matches"],
                }
            sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
            sys.stdout.flush()
    finally:
        child.close()
    return failed
