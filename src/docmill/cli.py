"""
The ``docmill`` command.

Imports are deferred into each command so that ``docmill --help`` and
``docmill extract`` on one file start quickly: the web stack, SQLAlchemy and
the format libraries load only in the commands that use them, and pydantic
only where settings are read (``docmill extract`` reads them without it when
nothing is configured; see docmill.extract_settings).

Option values are converted without pydantic (docmill._cli_values), and
``docmill extract`` runs its children without asyncio or multiprocessing
(docmill.local).

Typer converts every registered command into a Click command at each
start, though one runs (20 M instructions of a one-file ``docmill
extract``); ``main`` hands it only the command or group named on the
command line (``_solo``).
"""

# Annotations here are evaluated when a command is defined, not kept as text
# (no `from __future__ import annotations`): Typer reads the annotations of
# every command at each start, and each one kept as text costs it an eval.

import contextlib
import copy
import gc
import math
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from docmill import remote
from docmill._cli_values import PlainCommand, PlainGroup, SettingsHelp, settings_help
from docmill.parsing.commands import parse, parsers_app

if TYPE_CHECKING:
    from docmill.settings import Settings

app = typer.Typer(
    cls=PlainGroup,
    help="docmill: a self-hosted document processing service.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(cls=PlainGroup, help="Database schema.", no_args_is_help=True)
queue_app = typer.Typer(
    cls=PlainGroup, help="Inspect and manage the job queue.", no_args_is_help=True
)
storage_app = typer.Typer(
    cls=PlainGroup, help="Stored originals.", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(queue_app, name="queue")
app.add_typer(storage_app, name="storage")
app.add_typer(parsers_app, name="parsers")
app.command("parse", cls=PlainCommand)(parse)
app.add_typer(remote.keys_app, name="keys")
app.command("submit", cls=PlainCommand)(remote.submit)
app.command("status", cls=PlainCommand)(remote.status)


def _settings(**given: Any) -> "Settings":
    """Settings from the environment, with the flags the user gave on top."""
    from docmill.settings import Settings

    return Settings(
        **{name: value for name, value in given.items() if value is not None}
    )


# True in the `docmill` program (main() runs it), where a command may end the
# process itself; False where the app is called, as tests call it.
_PROGRAM = False


def main() -> None:
    global _PROGRAM
    _PROGRAM = True
    # What the imports made lives as long as the process: the collector
    # need not walk it again, at each collection or in the interpreter's
    # teardown at exit (71 M instructions of `docmill --help`'s 668 M).
    gc.freeze()
    try:
        _run(app, sys.argv[1:2])
    except Exception as exc:
        problems = _settings_problems(exc)
        if problems is None:
            raise
        # A setting is the user's input, not docmill's fault: say which one
        # and why, as a usage error, instead of pydantic's traceback.
        if len(problems) == 1:
            # One line, as the CLI's other refusals of a value.
            typer.echo(f"docmill: invalid setting {problems[0]}", err=True)
            raise SystemExit(2) from None
        typer.echo("docmill: invalid settings:", err=True)
        for line in problems:
            typer.echo(f"  {line}", err=True)
        raise SystemExit(2) from None


def _run(whole: typer.Typer, first: list[str]) -> None:
    """
    Run ``whole``, converting only the command or group ``first`` names.

    What the user sees is the same: Click looks only at the command named,
    and as a group of one, usage lines and errors still read ``docmill
    <command> ...``. Anything else (no argument, an option, a name that is
    not a command) runs the whole app, so ``--help`` lists every command
    and a mistyped name gets Click's own error.
    """
    name = first[0] if first else None
    commands = [
        command
        for command in whole.registered_commands
        if (command.name or _command_name(command.callback)) == name
    ]
    groups = [group for group in whole.registered_groups if group.name == name]
    if not commands and not groups:
        whole()
        return
    solo = copy.copy(whole)
    solo.registered_commands = commands
    solo.registered_groups = groups
    # get_group, not the app's call: with one command and no callback,
    # Typer would build a lone command, whose usage drops the command's
    # name. Typer's call adds only its exception hook, which this app
    # turns off (pretty_exceptions_enable=False).
    typer.main.get_group(solo)()


def _command_name(callback: Any) -> str:
    return str(getattr(callback, "__name__", "")).lower().replace("_", "-")


def _settings_problems(exc: Exception) -> list[str] | None:
    """One line per invalid setting when ``exc`` is Settings' validation error."""
    # Only a command that built Settings can have loaded pydantic_core.
    core = sys.modules.get("pydantic_core")
    if core is None or not isinstance(exc, core.ValidationError):
        return None
    if exc.title != "Settings":
        return None
    # The value given is not echoed: it may be a secret (a key, a password
    # in a database URL), and the user knows what they set.
    lines = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"])
        # A validator's own sentence, without pydantic's "Value error, ".
        cause = (
            error.get("ctx", {}).get("error")
            if error["type"] == "value_error"
            else None
        )
        message = str(cause) if cause is not None else error["msg"]
        lines.append(f"{field} (DOCMILL_{field.upper()} or its option): {message}")
    return lines


@app.command(cls=SettingsHelp)
def serve(
    host: str | None = typer.Option(None, help=settings_help("host")),
    port: int | None = typer.Option(None, help=settings_help("port")),
    workers: int | None = typer.Option(None, help=settings_help("workers")),
    no_workers: bool = typer.Option(
        False, "--no-workers", help="Run the API only; equivalent to --workers 0."
    ),
    data_dir: Path | None = typer.Option(None, help=settings_help("data_dir")),
    database_url: str | None = typer.Option(None, help=settings_help("database_url")),
    lease_seconds: float | None = typer.Option(
        None, help=settings_help("lease_seconds")
    ),
    job_timeout_seconds: float | None = typer.Option(
        None, help=settings_help("job_timeout_seconds")
    ),
    job_memory_mb: int | None = typer.Option(None, help=settings_help("job_memory_mb")),
    max_attempts: int | None = typer.Option(None, help=settings_help("max_attempts")),
    max_upload_bytes: int | None = typer.Option(
        None, help=settings_help("max_upload_bytes")
    ),
    shutdown_grace_seconds: float | None = typer.Option(
        None, help=settings_help("shutdown_grace_seconds")
    ),
    log_level: str | None = typer.Option(None, help=settings_help("log_level")),
) -> None:
    """Run the REST API and, in the same process, a pool of workers."""
    settings = _settings(
        host=host,
        port=port,
        workers=0 if no_workers else workers,
        data_dir=data_dir,
        database_url=database_url,
        lease_seconds=lease_seconds,
        job_timeout_seconds=job_timeout_seconds,
        job_memory_mb=job_memory_mb,
        max_attempts=max_attempts,
        max_upload_bytes=max_upload_bytes,
        shutdown_grace_seconds=shutdown_grace_seconds,
        log_level=log_level,
    )
    _require_data_dir(settings)
    import uvicorn

    from docmill.api.app import create_app
    from docmill.log import configure_logging

    configure_logging(settings.log_level)
    # On the embedded default the schema is brought up to date at start. On
    # PostgreSQL, several API processes may start at once, so migrating stays
    # an explicit step (`docmill db upgrade`), and serve refuses to start
    # without it; /readyz reports a schema that goes stale while serving.
    if not settings.is_sqlite:
        from docmill.runtime import DatabaseNotReady, require_schema

        try:
            require_schema(settings)
        except DatabaseNotReady as exc:
            typer.echo(f"docmill: {exc}", err=True)
            raise typer.Exit(2) from None
    application = create_app(settings, migrate=settings.is_sqlite, long_running=True)
    # uvicorn stops gracefully on SIGTERM and then raises the signal again
    # under the handler it found, so by default the process died of it (exit
    # 143). A stop that was asked for and done is a success, as it is for
    # `docmill worker`; before uvicorn starts, SIGTERM ends serve the same way.
    signal.signal(signal.SIGTERM, _stopped)

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: Any = None) -> None:
            # uvicorn waits for open responses before the lifespan hears of
            # the stop: an event stream would hold it for the whole graceful
            # timeout, then be cut off. Told now, streams end at once.
            stopping = getattr(application.state, "stopping", None)
            if stopping is not None:
                stopping.set()
            await super().shutdown(sockets)

    config = uvicorn.Config(
        application,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
        # Anyone can send X-Forwarded-For: believed from any loopback
        # client, as uvicorn does by default, each made-up address got a
        # rate-limit budget of its own.
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=list(settings.trusted_proxies),
        # Uploads can be large and slow; the extraction grace period, not
        # uvicorn's, decides how long shutdown waits for work.
        timeout_graceful_shutdown=max(5, int(settings.shutdown_grace_seconds) + 5),
    )
    server = Server(config)
    # The port first: uvicorn binds it after the application's start-up,
    # so a serve whose port was taken ran its embedded worker, and claimed
    # and read documents, before it failed. A failed bind exits here, as
    # uvicorn does (3, with its log line).
    listening = config.bind_socket()
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[listening])
    if not server.started:
        # As uvicorn.run says a failed start (the port taken, say).
        sys.exit(uvicorn.config.STARTUP_FAILURE)


def _stopped(signum: int, frame: object) -> None:
    raise SystemExit(0)


@app.command(cls=SettingsHelp)
def worker(
    concurrency: int | None = typer.Option(
        None, "--concurrency", "-c", help="Extraction slots (default: cores)."
    ),
    once: bool = typer.Option(False, "--once", help="Process what is due, then exit."),
    data_dir: Path | None = typer.Option(None, help=settings_help("data_dir")),
    database_url: str | None = typer.Option(None, help=settings_help("database_url")),
    lease_seconds: float | None = typer.Option(
        None, help=settings_help("lease_seconds")
    ),
    job_timeout_seconds: float | None = typer.Option(
        None, help=settings_help("job_timeout_seconds")
    ),
    job_memory_mb: int | None = typer.Option(None, help=settings_help("job_memory_mb")),
    log_level: str | None = typer.Option(None, help=settings_help("log_level")),
) -> None:
    """Run workers only, against the database the API uses."""
    if concurrency is not None and concurrency < 0:
        _exit_usage("--concurrency takes 1 or more (0: the default)")
    settings = _settings(
        data_dir=data_dir,
        database_url=database_url,
        lease_seconds=lease_seconds,
        job_timeout_seconds=job_timeout_seconds,
        job_memory_mb=job_memory_mb,
        log_level=log_level,
    )
    _require_data_dir(settings, make=False)
    from docmill.runtime import DatabaseNotReady, require_schema, run_worker

    # As serve: SQLite is migrated at start (run_worker), PostgreSQL must
    # have been migrated with `docmill db upgrade`. A SQLite database that
    # is not there at all is refused, as the admin verbs refuse it: a
    # mistyped --data-dir made a new, empty one and the worker sat idle.
    if settings.is_sqlite and settings.database_url is None:
        database = settings.data_dir / "docmill.db"
        if not database.exists():
            _exit_usage(
                f"no docmill database at {database}; start the worker where "
                "`docmill serve` keeps its data or pass --data-dir / "
                "--database-url, or create it with `docmill db upgrade`"
            )
    if not settings.is_sqlite:
        try:
            require_schema(settings, "start the worker")
        except DatabaseNotReady as exc:
            typer.echo(f"docmill: {exc}", err=True)
            raise typer.Exit(2) from None
    _require_data_dir(settings)
    run_worker(settings, concurrency or settings.workers or 1, drain=once)


MAX_JOBS_PER_CORE = 4


@app.command(cls=SettingsHelp)
def extract(
    # Text, not Path: Typer refused the whole run over one unreadable path,
    # and Path("") is the current directory. Both are decided below.
    names: list[str] = typer.Argument(
        ..., metavar="PATHS", help="Files or directories to read."
    ),
    output_format: str = typer.Option(
        "json",
        "--format",
        "-f",
        help="json: one JSON object per file (JSON Lines); text or markdown: "
        "the documents' text, each after a header line.",
    ),
    jobs: int = typer.Option(
        0,
        "--jobs",
        "-j",
        help="Parallel extraction processes (default: cores; at most 4 per core).",
    ),
    timeout_seconds: float | None = typer.Option(
        None, "--timeout", help=settings_help("job_timeout_seconds")
    ),
    password: str | None = typer.Option(
        None, help="Password for encrypted documents (tried on each)."
    ),
    charset: str | None = typer.Option(
        None,
        help="The encoding of the text files (windows-1253, koi8-r), tried "
        "after a byte-order mark and before detection; other formats ignore it.",
    ),
    include_text: bool = typer.Option(
        True, "--text/--no-text", help="Include the text in JSON output."
    ),
) -> None:
    """Process files locally, with no server: JSON Lines on stdout."""
    if output_format not in ("json", "text", "markdown"):
        raise typer.BadParameter("choose json, text or markdown", param_hint="--format")
    if jobs < 0:
        raise typer.BadParameter("0 (one per core) or more", param_hint="--jobs")
    if "" in names:
        # An unset variable ("$DIR") read the current directory, recursively.
        raise typer.BadParameter("a path must not be empty", param_hint="PATHS")
    if charset is not None:
        from docmill.exceptions import UnknownCharset
        from docmill.extract.charsets import declared_codec

        try:
            declared_codec(charset)
        except UnknownCharset as exc:
            raise typer.BadParameter(str(exc), param_hint="--charset") from exc
    from docmill.extract_settings import load_extract_settings
    from docmill.local import run_extract

    settings = load_extract_settings(job_timeout_seconds=timeout_seconds)
    cores = os.cpu_count() or 1
    # Each job is a process with its own interpreter and memory cap: past a
    # few per core they only queue for the CPU (500 made 340 processes on
    # two cores).
    if jobs > MAX_JOBS_PER_CORE * cores:
        jobs = MAX_JOBS_PER_CORE * cores
        typer.echo(
            f"docmill: --jobs is capped at {MAX_JOBS_PER_CORE} per core; using {jobs}",
            err=True,
        )

    failed = run_extract(
        [Path(name) for name in names],
        settings,
        output_format=output_format,
        jobs=jobs or cores,
        password=password,
        charset=charset,
        include_text=include_text,
    )
    code = 1 if failed else 0
    if _PROGRAM:
        # Nothing is left to clean up: the children are gone and the output
        # is written. The interpreter's teardown of every module would cost
        # a one-file run more than its own output does.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    raise typer.Exit(code)


@db_app.command("upgrade", cls=SettingsHelp)
def db_upgrade(
    data_dir: Path | None = typer.Option(None, help=settings_help("data_dir")),
    database_url: str | None = typer.Option(None, help=settings_help("database_url")),
) -> None:
    """Create the schema or bring it to the newest version."""
    settings = _settings(data_dir=data_dir, database_url=database_url)
    from docmill.runtime import upgrade_database

    typer.echo(upgrade_database(settings), err=True)


def _run_on_store(settings: "Settings", operation: Any) -> Any:
    """Run ``operation(store, storage)`` against the configured database."""
    from docmill.runtime import DatabaseNotReady, run_admin

    try:
        return run_admin(
            settings, lambda services: operation(services.store, services.storage)
        )
    except DatabaseNotReady as exc:
        typer.echo(f"docmill: {exc}", err=True)
        raise typer.Exit(2) from None


@queue_app.command("stats", cls=SettingsHelp)
def queue_stats(
    data_dir: Path | None = typer.Option(None, help=settings_help("data_dir")),
    database_url: str | None = typer.Option(None, help=settings_help("database_url")),
) -> None:
    """Documents per status, the oldest due document's age, last minute's output."""
    settings = _settings(data_dir=data_dir, database_url=database_url)
    stats = _run_on_store(settings, lambda store, _storage: store.queue_stats())
    for status, count in stats["counts"].items():
        typer.echo(f"{status:<24}{count:>10}")
    oldest = stats["oldest_pending_seconds"]
    typer.echo(
        f"{'oldest pending (s)':<24}{'-' if oldest is None else f'{oldest:.1f}':>10}"
    )
    typer.echo(f"{'finished last minute':<24}{stats['finished_last_minute']:>10}")


# Past this, --limit is a typo; the databases' integers end not far beyond.
MAX_LISTED = 1_000_000_000


@queue_app.command("failed", cls=SettingsHelp)
def queue_failed(
    limit: int = typer.Option(50, help="Most documents to list."),
    data_dir: Path | None = typer.Option(None, help=settings_help("data_dir")),
    database_url: str | None = typer.Option(None, help=settings_help("database_url")),
) -> None:
    """List failed documents (quarantined ones included) with their errors."""
    if not 1 <= limit <= MAX_LISTED:
        _exit_usage(f"--limit takes 1 to {MAX_LISTED}, not {limit}")
    settings = _settings(data_dir=data_dir, database_url=database_url)
    rows = _run_on_store(
        settings, lambda store, _storage: store.list(status="failed", limit=limit)
    )
    for row in rows:
        # A URL submission that failed to fetch has no file name: its URL is
        # what the operator needs to see.
        name = row.title or row.filename or row.source_url or "-"
        typer.echo(
            f"{row.id}  {row.error_code:<20} attempts={row.attempts}  {name}: "
            f"{row.error_message}"
        )


@queue_app.command("retry", cls=SettingsHelp)
def queue_retry(
    document_ids: list[str] = typer.Argument(
        None,
        metavar="DOCUMENT_IDS",
        help="Documents to retry, whatever they failed with (default: every "
        "failed one whose error another attempt may clear).",
    ),
    error_codes: list[str] = typer.Option(
        None,
        "--code",
        help="Only documents that failed with this error code (repeatable); "
        "any code, transient or not.",
    ),
    retry_all: bool = typer.Option(
        False,
        "--all",
        help="Every failed document, also those whose error only repeats "
        "(encrypted, unsupported_format...).",
    ),
    force: bool = typer.Option(
        False,
        "--force",
        help="Queue them even if that leaves more than DOCMILL_MAX_PENDING "
        "waiting (submissions then get 429 until the queue is below it).",
    ),
    data_dir: Path | None = typer.Option(None, help=settings_help("data_dir")),
    database_url: str | None = typer.Option(None, help=settings_help("database_url")),
) -> None:
    """
    Queue failed documents again, with a fresh set of attempts.

    Without IDs, --code or --all, only documents whose error another attempt
    may clear (timeout, worker_crash, fetch_failed) are queued; the others
    are counted and left failed.
    """
    from docmill.exceptions import DOCUMENT_ERROR_CODES, TRANSIENT_ERROR_CODES, shown

    # A code no document can carry matched nothing and read as "0 queued",
    # which looked like success; cancelled documents are not failed ones.
    failed_codes = sorted(DOCUMENT_ERROR_CODES - {"cancelled"})
    for code in error_codes or []:
        if code not in failed_codes:
            _exit_usage(
                f"--code {shown(code)} is not an error code a failed document "
                f"can have; one of: {', '.join(failed_codes)}"
            )
    if retry_all and error_codes:
        _exit_usage("--all retries every code; pass --all or --code, not both")
    # Retrying an encrypted or unsupported document only fails it again, and
    # after an outage those would crowd out the ones the outage failed. The
    # operator who names documents or codes gets what they named.
    chosen = bool(document_ids or error_codes or retry_all)
    codes = error_codes or (None if chosen else sorted(TRANSIENT_ERROR_CODES))
    settings = _settings(data_dir=data_dir, database_url=database_url)

    async def retry(store: Any, _storage: Any) -> tuple[int, int, dict[str, int]] | str:
        from docmill.exceptions import DocumentNotFound, RetryOverLimit

        # A named document that cannot be retried is a mistake to report,
        # not a silent zero (a typo in an id looked like success).
        for document_id in document_ids or []:
            try:
                row = await store.get(document_id)
            except DocumentNotFound as exc:
                return str(exc)
            if row.status != "failed":
                return f"document {document_id!r} is {row.status}, not failed"
        skipped: dict[str, int] = {}
        if not chosen:
            counts = await store.count_failed_by_code()
            skipped = {
                c: n for c, n in counts.items() if c not in TRANSIENT_ERROR_CODES
            }
        # The queue limit protects the database from a flood of work; an
        # operator's retry is let past it only on purpose (--force).
        try:
            retried = await store.retry_failed(document_ids or None, codes, force=force)
        except RetryOverLimit as exc:
            return (
                f"{exc}; none queued again. Retry fewer (IDs, --code), raise "
                "DOCMILL_MAX_PENDING, or pass --force"
            )
        pending = await store.count_pending() if force and store.max_pending else 0
        return int(retried), pending, skipped

    outcome = _run_on_store(settings, retry)
    if isinstance(outcome, str):
        typer.echo(f"docmill: {outcome}", err=True)
        raise typer.Exit(1)
    retried, pending, skipped = outcome
    typer.echo(f"{retried} document(s) queued again", err=True)
    if skipped:
        counts = ", ".join(f"{code} {n}" for code, n in sorted(skipped.items()))
        typer.echo(
            f"{sum(skipped.values())} document(s) left failed, with errors another "
            f"attempt would most likely repeat ({counts}); retry them with "
            "--code CODE or --all",
            err=True,
        )
    if pending > settings.max_pending > 0:
        typer.echo(
            f"{pending} documents are waiting, past DOCMILL_MAX_PENDING "
            f"({settings.max_pending}): submissions get 429 until the queue is "
            "below it",
            err=True,
        )


def _require_data_dir(settings: "Settings", *, make: bool = True) -> None:
    """
    Make the data directory (with ``make``; else only check what is there),
    or refuse in one line: a file by that name, or a place it cannot be
    made, was a traceback from the server's start-up.
    """
    where = f"the data directory {settings.data_dir} (--data-dir or DOCMILL_DATA_DIR)"
    if settings.data_dir.exists() and not settings.data_dir.is_dir():
        _exit_usage(f"cannot use {where}: it is not a directory")
    if not make:
        return
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _exit_usage(f"cannot use {where}: {exc.strerror or exc}")


def _exit_usage(message: str) -> NoReturn:
    typer.echo(f"docmill: {message}", err=True)
    raise typer.Exit(2)


@queue_app.command("purge", cls=SettingsHelp)
def queue_purge(
    older_than_days: float = typer.Option(
        ...,
        "--older-than-days",
        min=0,
        help="Delete those finished more than this many days ago; 0 deletes "
        "every one finished so far (failed documents are always kept).",
    ),
    data_dir: Path | None = typer.Option(None, help=settings_help("data_dir")),
    database_url: str | None = typer.Option(None, help=settings_help("database_url")),
) -> None:
    """Delete completed and cancelled documents, their results and originals."""
    from datetime import UTC, datetime, timedelta

    if not math.isfinite(older_than_days):
        raise typer.BadParameter(
            "give a finite number of days", param_hint="--older-than-days"
        )
    try:
        # The cutoff the store computes; past year 1 it overflowed there,
        # with a traceback.
        datetime.now(UTC) - timedelta(days=older_than_days)
    except OverflowError:
        _exit_usage(
            f"--older-than-days {older_than_days:g} reaches back before year 1; "
            "give fewer days"
        )
    settings = _settings(data_dir=data_dir, database_url=database_url)

    async def purge(store: Any, storage: Any) -> tuple[Any, Any]:
        purged = await store.purge(timedelta(days=older_than_days))
        for key in purged.unused_keys:
            await storage.delete(key)
        swept = await storage.sweep_staging(settings.staging_max_age_seconds)
        return purged, swept

    purged, swept = _run_on_store(settings, purge)
    typer.echo(
        f"purged {purged.documents} document(s); "
        f"{len(purged.unused_keys)} original(s) deleted",
        err=True,
    )
    typer.echo(_sweep_message(swept), err=True)


def _sweep_message(report: Any) -> str:
    megabytes = report.removed_bytes / 1e6
    line = f"swept {report.removed} stale staging item(s) ({megabytes:.1f} MB)"
    if report.unknown_age:
        line += (
            f"; {report.unknown_age} older staging upload(s) of unknown age left "
            "to `docmill serve`, which removes them once unchanged that long"
        )
    return line


@storage_app.command("sweep", cls=SettingsHelp)
def storage_sweep(
    upload_timeout_seconds: float | None = typer.Option(
        None, help=settings_help("upload_timeout_seconds")
    ),
    data_dir: Path | None = typer.Option(None, help=settings_help("data_dir")),
    database_url: str | None = typer.Option(None, help=settings_help("database_url")),
) -> None:
    """Remove staging of uploads that died mid-way (every `serve` does this too)."""
    settings = _settings(
        upload_timeout_seconds=upload_timeout_seconds,
        data_dir=data_dir,
        database_url=database_url,
    )
    report = _run_on_store(
        settings,
        lambda _store, storage: storage.sweep_staging(settings.staging_max_age_seconds),
    )
    typer.echo(_sweep_message(report), err=True)


if __name__ == "__main__":  # pragma: no cover
    main()
