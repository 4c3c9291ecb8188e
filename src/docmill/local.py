"""
``docmill extract``: the worker's extraction path, without a server.

Files are read by the same killable child processes the workers use, one per
core, so a hostile file times out here exactly as it would in the service.
Results go to stdout as JSON Lines (or text), in the order files finish;
the progress bar and the summary go to stderr so stdout stays clean.
"""

from __future__ import annotations

import contextlib
import selectors
import signal
import stat
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from docmill.exceptions import ExtractionError
from docmill.extract.child import ExtractionChild
from docmill.extract_settings import ExtractSettings


def iter_files(paths: list[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file())
        else:
            yield path


def run_extract(
    paths: list[Path],
    settings: ExtractSettings,
    *,
    output_format: str,
    jobs: int,
    password: str | None = None,
    include_text: bool = True,
) -> int:
    """Extract every file; return how many failed."""
    files = list(iter_files(paths))
    with _stopped_by_signals():
        return _run(
            files,
            settings,
            output_format,
            max(1, min(jobs, len(files) or 1)),
            password,
            include_text,
        )


def _run(
    files: list[Path],
    settings: ExtractSettings,
    output_format: str,
    jobs: int,
    password: str | None,
    include_text: bool,
) -> int:
    # One thread and a selector over the children's sockets: no event loop to
    # import (asyncio is a fifth of a one-file run's start-up), and no
    # thread, so forking a child, a replacement included, is always safe.
    todo = deque(files)
    failures = 0
    started = time.perf_counter()
    progress = _progress_bar(len(files))
    # The file each busy child is reading, as the record its outcome completes.
    busy: dict[ExtractionChild, dict[str, Any]] = {}

    def finish(record: dict[str, Any]) -> None:
        nonlocal failures
        try:
            _emit(record, output_format, include_text)
        except UnicodeEncodeError as exc:
            # Nothing of the record was written (it goes out in one write):
            # its file is reported failed and the run goes on.
            record = {key: record[key] for key in ("path", "sha256") if key in record}
            record |= _unwritable(exc)
            _emit(record, output_format, include_text)
        if record["status"] == "failed":
            failures += 1
        if progress is not None:
            progress.advance(progress.task_ids[0])

    def hand_over(child: ExtractionChild) -> None:
        """Give ``child`` the next file, finishing those it never gets to read."""
        while todo:
            path = todo.popleft()
            record: dict[str, Any] = {"path": _printable(path)}
            refused: ExtractionError | OSError | None = None
            if not _regular(path, record):
                finish(record)
                continue
            try:
                child.begin(
                    path.resolve(),
                    path.name,
                    settings.job_timeout_seconds,
                    password=password,
                )
            except (ExtractionError, OSError) as exc:
                refused = exc
            # Hashed while the child reads the file. A file that cannot be
            # hashed is unreadable, whatever the child makes of it.
            try:
                record["sha256"] = _sha256(path)
            except OSError as exc:
                record |= _unreadable(exc)
            if refused is None:
                busy[child] = record
                return
            if "status" not in record:
                record |= _failure(refused)
            finish(record)

    def collect(child: ExtractionChild) -> None:
        try:
            payload = child.collect()
        except ExtractionError as exc:
            outcome = _failure(exc)
        else:
            if payload is None:
                return
            outcome = {"status": "completed", "result": payload}
        record = busy.pop(child)
        finish(record if "status" in record else record | outcome)
        hand_over(child)

    # Children are forked before anything else happens here, all from this
    # one thread, which makes fork safe and saves booting a fork server:
    # most of the start-up time of a one-file `docmill extract`.
    children = [
        ExtractionChild(
            settings.limits,
            settings.job_memory_mb,
            settings.extractor_plugins,
            start_method="fork",
        )
        for _ in range(jobs)
    ]
    try:
        for child in children:
            child.start()
        with progress or contextlib.nullcontext():
            for child in children:
                hand_over(child)
            while busy:
                wait = min(child.deadline for child in busy) - time.monotonic()
                ready = _readable(busy, max(wait, 0))
                now = time.monotonic()
                for child in [c for c in busy if c in ready or c.deadline <= now]:
                    collect(child)
    finally:
        for child in children:
            child.close()
    elapsed = time.perf_counter() - started
    sys.stderr.write(
        f"{len(files)} file(s) in {elapsed:.1f}s: "
        f"{len(files) - failures} completed, {failures} failed\n"
    )
    return failures


@contextlib.contextmanager
def _stopped_by_signals() -> Iterator[None]:
    """
    Make SIGTERM and SIGHUP end the run through the ``finally`` of ``_run``,
    which kills the children: left to the default action, the process died
    at once and its children read on (the kernel kills them too on Linux,
    see ``extract.child._die_with``; not elsewhere).
    """

    def stop(number: int, _frame: Any) -> None:
        raise SystemExit(128 + number)

    numbers = (signal.SIGTERM, signal.SIGHUP)
    try:
        previous = [signal.signal(number, stop) for number in numbers]
    except ValueError:  # not the main thread: leave signals to the caller
        yield
        return
    try:
        yield
    finally:
        for number, handler in zip(numbers, previous, strict=True):
            signal.signal(number, handler)


def _readable(children: Iterable[ExtractionChild], timeout: float) -> set[Any]:
    """
    The children with an answer waiting, within ``timeout`` seconds.

    A selector, not select(): select() refuses descriptors past 1023, which a
    caller holding many files open (a test run, an embedding program) reaches.
    """
    with selectors.DefaultSelector() as selector:
        for child in children:
            selector.register(child, selectors.EVENT_READ)
        return {key.fileobj for key, _ in selector.select(timeout)}


def _failure(exc: ExtractionError | OSError) -> dict[str, Any]:
    if isinstance(exc, OSError):
        return _unreadable(exc)
    return {"status": "failed", "error": {"code": exc.code, "message": exc.message}}


def _unreadable(exc: OSError) -> dict[str, Any]:
    message = f"cannot read the file: {exc}"
    return {"status": "failed", "error": {"code": "unreadable", "message": message}}


def _regular(path: Path, record: dict[str, Any]) -> bool:
    """
    Whether ``path`` is a regular file; if not, ``record`` says why. A device
    or a pipe has no end to reach (``/dev/zero`` ran forever, silently) and
    no second reading for the hash.
    """
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        record |= _unreadable(exc)
        return False
    if stat.S_ISREG(mode):
        return True
    message = "not a regular file (a device, pipe or socket); not read"
    record |= {"status": "failed", "error": {"code": "unreadable", "message": message}}
    return False


def _unwritable(exc: UnicodeEncodeError) -> dict[str, Any]:
    message = f"the result could not be written to stdout: {exc}"
    return {"status": "failed", "error": {"code": "unwritable", "message": message}}


def _printable(path: Path) -> str:
    """
    ``path`` as text any output can hold: a name's bytes that are not UTF-8
    (kept by Python as lone surrogates) show as U+FFFD.
    """
    name = str(path)
    if name.isascii():
        return name
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _progress_bar(total: int) -> Any:
    """A Rich progress bar on a terminal; None otherwise."""
    # Rich costs ~0.1 s to import: a one-file run in a script or pipe should
    # not pay for a bar nobody sees.
    if not sys.stderr.isatty():
        return None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
        # Rich would otherwise route stdout through the bar's console on
        # stderr while the bar shows: `docmill extract ... > results.jsonl`
        # at a terminal wrote nothing to the file. Only when stdout is the
        # same terminal do results go above the bar.
        redirect_stdout=sys.stdout.isatty(),
        redirect_stderr=False,
    )
    progress.add_task("extracting", total=total)
    return progress


def _sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(1024 * 1024):
            digest.update(chunk)
    return str(digest.hexdigest())


def _emit(record: dict[str, Any], output_format: str, include_text: bool) -> None:
    result = record.get("result")
    if output_format == "json":
        # Imported here, as hashlib is, so that the import runs while the
        # first child reads its file rather than before the child is forked.
        import json

        if result is not None and not include_text:
            result = dict(result)
            for key in ("text", "markdown", "pages"):
                result.pop(key, None)
            record = record | {"result": result}
        line = json.dumps(record, ensure_ascii=False) + "\n"
    else:
        line = f"==> {record['path']} <==\n"
        if result is None:
            error = record["error"]
            line += f"[failed: {error['code']}: {error['message']}]\n\n"
        elif output_format == "markdown" and result.get("markdown") is not None:
            line += result["markdown"].rstrip("\n") + "\n\n"
        else:
            line += result["text"].rstrip("\n") + "\n\n"
    sys.stdout.write(line)
    sys.stdout.flush()
