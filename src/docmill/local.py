"""
``docmill extract``: the worker's extraction path, without a server.

Files are read by the same killable child processes the workers use, one per
core, so a hostile file times out here exactly as it would in the service.
Results go to stdout as JSON Lines (or text), in the order files finish;
the progress bar and the summary go to stderr so stdout stays clean.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from docmill.exceptions import ExtractionError
from docmill.extract.child import ExtractionChild
from docmill.extract_settings import ExtractSettings

_HASH_INLINE_BYTES = 1024 * 1024


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
    return asyncio.run(
        _run(
            files,
            settings,
            output_format,
            max(1, min(jobs, len(files) or 1)),
            password,
            include_text,
        )
    )


async def _run(
    files: list[Path],
    settings: ExtractSettings,
    output_format: str,
    jobs: int,
    password: str | None,
    include_text: bool,
) -> int:
    queue: asyncio.Queue[Path] = asyncio.Queue()
    for path in files:
        queue.put_nowait(path)
    failures = 0
    started = time.perf_counter()
    progress = _progress_bar(len(files))

    # Children are forked before this process starts any thread (hashing runs
    # in one), which makes fork safe and saves booting a fork server: most of
    # the start-up time of a one-file `docmill extract`.
    children = [
        ExtractionChild(
            settings.limits,
            settings.job_memory_mb,
            settings.extractor_plugins,
            start_method="fork",
        )
        for _ in range(jobs)
    ]
    for child in children:
        child.start()

    async def slot(child: ExtractionChild) -> None:
        nonlocal failures
        try:
            while not queue.empty():
                path = queue.get_nowait()
                record = await _extract_one(child, path, settings, password)
                if record["status"] == "failed":
                    failures += 1
                _emit(record, output_format, include_text)
                if progress is not None:
                    progress.advance(progress.task_ids[0])
        finally:
            child.close()

    with progress or contextlib.nullcontext():
        await asyncio.gather(*(slot(child) for child in children))
    elapsed = time.perf_counter() - started
    sys.stderr.write(
        f"{len(files)} file(s) in {elapsed:.1f}s: "
        f"{len(files) - failures} completed, {failures} failed\n"
    )
    return failures


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


async def _extract_one(
    child: ExtractionChild, path: Path, settings: ExtractSettings, password: str | None
) -> dict[str, Any]:
    import hashlib

    record: dict[str, Any] = {"path": str(path)}
    try:
        # A thread costs more to start than hashing a small file takes.
        if path.stat().st_size <= _HASH_INLINE_BYTES:
            record["sha256"] = _sha256(path, hashlib)
        else:
            record["sha256"] = await asyncio.to_thread(_sha256, path, hashlib)
        payload = await child.extract(
            path.resolve(), path.name, settings.job_timeout_seconds, password=password
        )
    except ExtractionError as exc:
        record |= {
            "status": "failed",
            "error": {"code": exc.code, "message": exc.message},
        }
    except OSError as exc:
        record |= {
            "status": "failed",
            "error": {"code": "unreadable", "message": f"cannot read the file: {exc}"},
        }
    else:
        record |= {"status": "completed", "result": payload}
    return record


def _sha256(path: Path, hashlib: Any) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(1024 * 1024):
            digest.update(chunk)
    return str(digest.hexdigest())


def _emit(record: dict[str, Any], output_format: str, include_text: bool) -> None:
    result = record.get("result")
    if output_format == "json":
        if result is not None and not include_text:
            result = dict(result)
            for key in ("text", "markdown", "pages"):
                result.pop(key, None)
            record = record | {"result": result}
        sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(f"==> {record['path']} <==\n")
        if result is None:
            error = record["error"]
            sys.stdout.write(f"[failed: {error['code']}: {error['message']}]\n\n")
        elif output_format == "markdown" and result.get("markdown") is not None:
            sys.stdout.write(result["markdown"].rstrip("\n") + "\n\n")
        else:
            sys.stdout.write(result["text"].rstrip("\n") + "\n\n")
    sys.stdout.flush()
