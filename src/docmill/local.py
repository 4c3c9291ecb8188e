"""
``docmill extract``: the worker's extraction path, without a server.

Files are read by the same killable child processes the workers use, one per
core, so a hostile file times out here exactly as it would in the service.
Results go to stdout as JSON Lines (or text), in the order files finish;
the progress bar and the summary go to stderr so stdout stays clean.
"""

from __future__ import annotations

import contextlib
import os
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


def iter_files(paths: list[Path]) -> Iterator[Path | Unlisted]:
    """
    Each path, and what is under each directory, in sorted order.

    Everything a walk finds is given back, not only regular files: a
    dangling link, a pipe or a socket then gets its ``unreadable`` line, as
    when it is named (the walk used to drop them without a word). Links to
    directories are not followed, so a walk ends; a directory that cannot
    be listed comes back as ``Unlisted``.
    """
    for path in paths:
        if path.is_dir():
            yield from sorted(_walk(path), key=_path_of)
        else:
            yield path


class Unlisted:
    """A directory whose entries could not be read."""

    def __init__(self, path: Path, error: OSError) -> None:
        self.path = path
        self.error = error


def _path_of(entry: Path | Unlisted) -> Path:
    return entry.path if isinstance(entry, Unlisted) else entry


def _walk(top: Path) -> Iterator[Path | Unlisted]:
    pending = [top]
    while pending:
        directory = pending.pop()
        try:
            with os.scandir(directory) as listing:
                entries = list(listing)
        except OSError as exc:
            yield Unlisted(directory, exc)
            continue
        for entry in entries:
            path = directory / entry.name
            try:
                is_directory = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_directory = False
            if is_directory:
                pending.append(path)
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
    charset: str | None = None,
) -> int:
    """
    Extract every file, the text formats read in ``charset`` first; return
    how many failed.
    """
    files = list(iter_files(paths))
    with _stopped_by_signals():
        return _run(
            files,
            settings,
            output_format,
            max(1, min(jobs, len(files) or 1)),
            password,
            include_text,
            charset,
        )


def _run(
    files: list[Path | Unlisted],
    settings: ExtractSettings,
    output_format: str,
    jobs: int,
    password: str | None,
    include_text: bool,
    charset: str | None = None,
) -> int:
    # One thread and a selector over the children's sockets: no event loop to
    # import (asyncio is a fifth of a one-file run's start-up), and no
    # thread, so forking a child, a replacement included, is always safe.
    todo = deque(files)
    failures = finished = 0
    started = time.perf_counter()
    progress = _progress_bar(len(files))
    # The file each busy child is reading, as the record its outcome completes.
    busy: dict[ExtractionChild, dict[str, Any]] = {}

    def finish(record: dict[str, Any]) -> None:
        nonlocal failures, finished
        finished += 1
        try:
            _emit(record, output_format, include_text)
        except UnicodeEncodeError:
            # Nothing of the record was written (it goes out in one write).
            # The name and messages are docmill's words, and go out escaped;
            # the document's text goes out as it is or not at all, so a
            # file whose text the output cannot hold is reported failed and
            # the run goes on.
            try:
                _emit(record, output_format, include_text, escaped=True)
            except UnicodeEncodeError as exc:
                kept = ("path", "path_bytes", "sha256")
                record = {key: record[key] for key in kept if key in record}
                record |= _unwritable(exc)
                _emit(record, output_format, include_text, escaped=True)
        if record["status"] == "failed":
            failures += 1
        if progress is not None:
            progress.advance(progress.task_ids[0])

    def hand_over(child: ExtractionChild) -> None:
        """Give ``child`` the next file, finishing those it never gets to read."""
        while todo:
            path = todo.popleft()
            if isinstance(path, Unlisted):
                finish(_named(path.path) | _unreadable(path.error, "directory"))
                continue
            record: dict[str, Any] = _named(path)
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
                    charset=charset,
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
    interrupted = False
    try:
        for child in children:
            child.start()
        with progress or contextlib.nullcontext():
            try:
                for child in children:
                    hand_over(child)
                while busy:
                    wait = min(child.deadline for child in busy) - time.monotonic()
                    ready = _readable(busy, max(wait, 0))
                    now = time.monotonic()
                    for child in [c for c in busy if c in ready or c.deadline <= now]:
                        collect(child)
            except KeyboardInterrupt:
                # Ctrl-C: the bar stays on screen, showing how far it got,
                # and the summary below still says what was done.
                interrupted = True
                if progress is not None:
                    progress.live.transient = False
                raise
    finally:
        for child in children:
            child.close()
        elapsed = time.perf_counter() - started
        outcome = f"{finished - failures} completed, {failures} failed"
        if interrupted:
            sys.stderr.write(
                f"interrupted after {finished} of {_counted(files)} in "
                f"{elapsed:.1f}s: {outcome}\n"
            )
        else:
            sys.stderr.write(f"{_counted(files)} in {elapsed:.1f}s: {outcome}\n")
    return failures


def _counted(files: list[Path | Unlisted]) -> str:
    """
    What the run was given, as the summary counts it: the files, and apart
    from them the directories that could not be listed.

    Each of those has a failed record of its own, so the completed and
    failed counts add up to the two together; called files, the directories
    made a tree with one unreadable folder look like one more file.
    """
    unlisted = sum(isinstance(entry, Unlisted) for entry in files)
    counted = f"{len(files) - unlisted} file(s)"
    if unlisted:
        counted += f" and {unlisted} unlisted director{'y' if unlisted == 1 else 'ies'}"
    return counted


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


def _unreadable(exc: OSError, what: str = "file") -> dict[str, Any]:
    message = f"cannot read the {what}: {exc}"
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
    if stat.S_ISDIR(mode):
        message = "a link to a directory; a walk does not follow links"
    else:
        message = "not a regular file (a device, pipe or socket); not read"
    record |= {"status": "failed", "error": {"code": "unreadable", "message": message}}
    return False


def _unwritable(exc: UnicodeEncodeError) -> dict[str, Any]:
    message = f"the result could not be written to stdout: {exc}"
    return {"status": "failed", "error": {"code": "unwritable", "message": message}}


def _named(path: Path) -> dict[str, str]:
    """
    The fields that name ``path`` in its record.

    ``path`` is text any output can hold: a name's bytes that are not UTF-8
    (kept by Python as lone surrogates) show as U+FFFD there, so such a
    record also carries the name's own bytes, base64-encoded, in
    ``path_bytes``, to find the file by.
    """
    name = str(path)
    if name.isascii():
        return {"path": name}
    raw = name.encode("utf-8", "surrogateescape")
    shown = raw.decode("utf-8", "replace")
    if shown == name:
        return {"path": name}
    import base64

    return {"path": shown, "path_bytes": base64.b64encode(raw).decode("ascii")}


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


def _emit(
    record: dict[str, Any],
    output_format: str,
    include_text: bool,
    *,
    escaped: bool = False,
) -> None:
    """
    Write ``record`` to stdout in one write.

    ``escaped`` writes everything but the result's text and fields in a form
    any output encoding holds: JSON escapes, or backslash escapes in text.
    """
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
        if escaped:
            line = _escaped_json(record) + "\n"
        else:
            line = json.dumps(record, ensure_ascii=False) + "\n"
    else:
        line = _shown(f"==> {record['path']} <==\n", escaped)
        if result is None:
            error = record["error"]
            failed = f"[failed: {error['code']}: {error['message']}]\n\n"
            line += _shown(failed, escaped)
        elif output_format == "markdown" and result.get("markdown") is not None:
            line += result["markdown"].rstrip("\n") + "\n\n"
        else:
            line += result["text"].rstrip("\n") + "\n\n"
    sys.stdout.write(line)
    sys.stdout.flush()


def _escaped_json(record: dict[str, Any]) -> str:
    """``record`` as JSON, ASCII but for its result, which comes last."""
    import json

    about = {key: value for key, value in record.items() if key != "result"}
    line = json.dumps(about)
    if "result" not in record:
        return line
    result = json.dumps(record["result"], ensure_ascii=False)
    return f'{line[:-1]}, "result": {result}}}'


def _shown(text: str, escaped: bool) -> str:
    """``text`` with what stdout's encoding lacks backslash-escaped, if asked."""
    if not escaped:
        return text
    encoding = sys.stdout.encoding or "utf-8"
    return text.encode(encoding, "backslashreplace").decode(encoding)
