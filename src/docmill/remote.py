"""
CLI verbs that talk to a docmill server (``submit``, ``status``) or manage
its API keys (``keys``).
"""

# Annotations here are evaluated when a command is defined, not kept as text
# (no `from __future__ import annotations`): Typer reads the annotations of
# every command at each start, and each one kept as text costs it an eval.

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import typer

from docmill._cli_values import PlainGroup, SettingsHelp, settings_help

keys_app = typer.Typer(
    cls=PlainGroup, help="API keys: create, list, revoke.", no_args_is_help=True
)

# The variable is named in the help as every other option's is, not in
# Typer's own [env var: ...] note.
_SERVER = typer.Option(
    "http://127.0.0.1:8000",
    "--server",
    envvar="DOCMILL_SERVER",
    show_envvar=False,
    help="API address. (env: DOCMILL_SERVER)",
)
_API_KEY = typer.Option(
    None,
    "--api-key",
    envvar="DOCMILL_API_KEY",
    show_envvar=False,
    help="API key, when auth is on. (env: DOCMILL_API_KEY)",
)


def submit(
    # Text, checked below, not Path: Typer's refusal of a directory or an
    # unreadable file was a boxed usage error that did not give the reason,
    # and Path("") is the current directory.
    names: list[str] = typer.Argument(..., metavar="FILES", help="Files to send."),
    wait: bool = typer.Option(False, "--wait", help="Wait until each is final."),
    timeout: float = typer.Option(
        300.0, min=0, help="Seconds --wait waits per document."
    ),
    reconnect_seconds: float = typer.Option(
        60.0,
        "--reconnect-seconds",
        min=0,
        help="How long --wait keeps trying a server it lost (unreachable, or "
        "502/503/504 from a proxy) before giving up.",
    ),
    title: str | None = typer.Option(None, help="Title for every file."),
    client_ref: str | None = typer.Option(None, help="Your reference, for every file."),
    charset: str | None = typer.Option(
        None,
        help="The encoding of every text file sent (windows-1253, koi8-r), "
        "declared in its upload; tried after a byte-order mark and before "
        "detection.",
    ),
    server: str = _SERVER,
    api_key: str | None = _API_KEY,
) -> None:
    """Send files to a running server; print one JSON line per document."""
    if "" in names:
        typer.echo("docmill: a file name must not be empty", err=True)
        raise typer.Exit(2)
    files = [Path(name) for name in names]
    refusals = [line for line in map(_unsendable, files) if line is not None]
    if refusals:
        # Before anything is sent, as a usage error: the command line is wrong.
        for line in refusals:
            typer.echo(f"docmill: {line}", err=True)
        raise typer.Exit(2)
    if charset is not None:
        from docmill.exceptions import UnknownCharset
        from docmill.extract.charsets import declared_codec

        try:
            declared_codec(charset)
        except UnknownCharset as exc:
            typer.echo(f"docmill: --charset: {exc}", err=True)
            raise typer.Exit(2) from exc
    import httpx

    from docmill.client import ApiError, Client, WaitTimeout

    failed = False
    # Each document's id is out as soon as its 202 arrives: a --wait that
    # lost the server used to end with nothing printed, and the user, with
    # no id to look up, submitted the same files again.
    submitted: list[tuple[Path, str]] = []
    with Client(server, api_key=api_key) as client:
        for sent, path in enumerate(files):
            if not _regular(path):
                # /dev/zero was streamed until the connection broke, with
                # a traceback; as in `docmill extract`, it is not read.
                typer.echo(
                    f"docmill: {path}: not a regular file (a device, pipe or "
                    "socket); not sent",
                    err=True,
                )
                failed = True
                continue
            try:
                document = client.submit(
                    path, title=title, client_ref=client_ref, charset=charset
                )
            except ApiError as exc:
                typer.echo(f"{path}: {exc}", err=True)
                failed = True
                continue
            except httpx.TransportError as exc:
                _unreachable(server, exc, submitted, files[sent:])
            except OSError as exc:
                # Readable when checked, not when sent (removed meanwhile).
                typer.echo(
                    f"{path}: cannot read it: {_reason(exc)}; not sent", err=True
                )
                failed = True
                continue
            if wait:
                typer.echo(f"submitted {path}: {document.id}", err=True)
                submitted.append((path, document.id))
            else:
                failed |= _print_document(document)
        for index, (path, document_id) in enumerate(submitted):
            try:
                document = client.wait(
                    document_id, timeout, reconnect_seconds=reconnect_seconds
                )
            except (ApiError, WaitTimeout) as exc:
                typer.echo(f"{path}: {exc}", err=True)
                failed = True
                continue
            except httpx.TransportError as exc:
                _unreachable(server, exc, submitted[index:])
            failed |= _print_document(document)
    raise typer.Exit(1 if failed else 0)


def _unsendable(path: Path) -> str | None:
    """Why ``path`` cannot be submitted, in one line; None if it can be."""
    import stat

    try:
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            return f"cannot send {path}: it is a directory; submit takes files"
        if stat.S_ISREG(mode):
            # Opened, not judged by its mode bits, which root is not held to.
            with open(path, "rb"):
                pass
    except OSError as exc:
        return f"cannot read {path}: {_reason(exc)}"
    # A device or a pipe is left to the loop, which says it is not sent.
    return None


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _regular(path: Path) -> bool:
    import stat

    try:
        return stat.S_ISREG(path.stat().st_mode)
    except OSError:
        return False


def _print_document(document: Any) -> bool:
    """Print ``document``'s line; whether it ended failed or cancelled."""
    document.result = _summary(document.result)
    typer.echo(document.model_dump_json(exclude_none=True))
    return bool(document.status in ("failed", "cancelled"))


def _unreachable(
    server: str,
    exc: Exception,
    unfinished: Sequence[tuple[Path, str]] = (),
    unsent: Sequence[Path] = (),
) -> NoReturn:
    # The same cause for every file after this one: say it once and stop.
    typer.echo(f"cannot reach the docmill server at {server}: {exc}", err=True)
    for path, document_id in unfinished:
        # Submitted, and not known to be final: to be looked up later, not
        # submitted again.
        typer.echo(f"  not final yet: {document_id} ({path})", err=True)
    if unsent:
        typer.echo(f"  not sent: {len(unsent)} file(s), from {unsent[0]} on", err=True)
    raise typer.Exit(1) from exc


def _summary(result: Any) -> Any:
    # Page texts can be megabytes; the CLI line stays a summary.
    if result is not None:
        result.pages = None
    return result


def status(
    document_id: str = typer.Argument(
        ..., metavar="DOCUMENT_ID", help="The id submit printed for it."
    ),
    server: str = _SERVER,
    api_key: str | None = _API_KEY,
) -> None:
    """Print a document's status as JSON."""
    if not document_id.strip():
        # An empty id asked for the list's address, and the answer was a
        # redirect shown as "HTTP 307: {'detail': ''}".
        typer.echo("docmill: a document id must not be empty", err=True)
        raise typer.Exit(2)
    import httpx

    from docmill.client import ApiError, Client

    with Client(server, api_key=api_key) as client:
        try:
            document = client.get(document_id)
        except ApiError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(1) from exc
        except httpx.TransportError as exc:
            _unreachable(server, exc)
    document.result = _summary(document.result)
    typer.echo(document.model_dump_json(exclude_none=True))


_DATA_DIR = typer.Option(None, help=settings_help("data_dir"))
_DATABASE_URL = typer.Option(None, help=settings_help("database_url"))


def _keys(data_dir: Path | None, database_url: str | None, operation: Any) -> Any:
    """Run ``operation(key_store)`` on the database the admin verbs use."""
    from docmill.runtime import DatabaseNotReady, run_admin
    from docmill.settings import Settings

    given: dict[str, Any] = {"data_dir": data_dir, "database_url": database_url}
    settings = Settings(**{k: v for k, v in given.items() if v is not None})
    try:
        return run_admin(settings, lambda services: operation(services.keys))
    except DatabaseNotReady as exc:
        typer.echo(f"docmill: {exc}", err=True)
        raise typer.Exit(2) from None


@keys_app.command("create", cls=SettingsHelp)
def keys_create(
    name: str = typer.Argument(..., metavar="NAME", help="Who or what uses it."),
    data_dir: Path | None = _DATA_DIR,
    database_url: str | None = _DATABASE_URL,
) -> None:
    """Create a key and print its token, which is shown this once only."""
    from docmill.queue.keys import name_problem

    problem = name_problem(name)
    if problem is not None:
        typer.echo(f"docmill: {problem}", err=True)
        raise typer.Exit(2)
    key = _keys(data_dir, database_url, lambda keys: keys.create(name))
    typer.echo(key.token)
    typer.echo(f"key {key.id} ({name}) created; store the token now", err=True)


@keys_app.command("list", cls=SettingsHelp)
def keys_list(
    data_dir: Path | None = _DATA_DIR, database_url: str | None = _DATABASE_URL
) -> None:
    """Keys with their state; tokens are never shown again."""
    for row in _keys(data_dir, database_url, lambda keys: keys.list()):
        state = "revoked" if row.revoked_at else "active"
        used = row.last_used_at.isoformat() if row.last_used_at else "-"
        typer.echo(
            f"{row.id}  {state:<8} {row.created_at.isoformat()}  {used}  {row.name}"
        )


@keys_app.command("revoke", cls=SettingsHelp)
def keys_revoke(
    key_id: str = typer.Argument(
        ..., metavar="KEY_ID", help="The key's id, as `docmill keys list` shows it."
    ),
    data_dir: Path | None = _DATA_DIR,
    database_url: str | None = _DATABASE_URL,
) -> None:
    """Revoke a key at once."""
    if not _keys(data_dir, database_url, lambda keys: keys.revoke(key_id)):
        typer.echo(f"no active key {key_id!r}", err=True)
        sys.exit(1)
    typer.echo(f"key {key_id} revoked", err=True)
