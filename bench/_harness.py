"""
Shared pieces of the service benches: servers, corpus, memory, results.

``service.py``, ``api.py``, ``scale.py`` and ``throughput.py`` start every
process they measure themselves, on 127.0.0.1 and a free port, and stop each
one by its own pid (or the process group it leads) when they finish.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import datetime
import json
import mimetypes
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import psutil

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
CORPUS = (REPO / ".." / "shared" / "corpus").resolve()
PYTHON = Path(sys.executable)
# The console script next to the interpreter, so the bench measures the
# docmill installed in the venv it runs under.
DOCMILL = PYTHON.parent / "docmill"
# The per-client rate limit (600/minute by default) would turn a load test
# from one address into a test of the limiter's 429s. A limit no bench
# reaches keeps the limiter's per-request cost in every figure.
BENCH_ENV = {"DOCMILL_LOG_LEVEL": "warning", "DOCMILL_RATE_LIMIT": "1000000000/minute"}
POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

VERSIONED = [
    "docmill",
    "fastapi",
    "starlette",
    "uvicorn",
    "pydantic",
    "sqlalchemy",
    "aiosqlite",
    "asyncpg",
    "alembic",
    "httpx",
    "psutil",
    # uvicorn parses HTTP with httptools and runs on uvloop when they are
    # installed (the `speed` extra), else h11 and asyncio's own loop.
    "httptools",
    "uvloop",
]


def use_snapshot(working_tree: bool = False) -> str:
    """
    Run docmill from a snapshot of the committed ``src/``, not the work tree.

    Others edit ``src/`` while the bench runs, and a half-made edit must not
    end up in (or break) a measurement. The snapshot goes first on
    ``PYTHONPATH`` for every process we start, and first on ``sys.path``
    here. Returns the commit measured (with ``+dirty`` for the work tree).
    """
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if working_tree:
        # This checkout's src/, first: an editable install of another
        # checkout (a worktree beside the one whose venv runs the bench)
        # would otherwise be what the workers import.
        _put_first(str(REPO / "src"))
        return f"{commit}+dirty"
    root = Path(tempfile.mkdtemp(prefix="docmill-bench-src-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "HEAD", "src"],
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    _put_first(str(root / "src"))
    return commit


def _put_first(src: str) -> None:
    """Import docmill from ``src``, here and in every process we start."""
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [src, *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    sys.path.insert(0, src)


def corpus_files(corpus: Path = CORPUS) -> list[Path]:
    """The corpus files that are not in ``hostile/``, in manifest order."""
    lines = (corpus / "MANIFEST.tsv").read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    files = []
    for line in lines[1:]:
        record = dict(zip(header, line.split("\t"), strict=False))
        if record["path"].startswith("hostile/"):
            continue
        files.append(corpus / record["path"])
    return files


def repeat_to(files: Sequence[Path], count: int) -> list[Path]:
    """``files`` cycled until there are ``count`` of them."""
    return [files[i % len(files)] for i in range(count)]


def free_port() -> int:
    """
    A free port on 127.0.0.1: any the kernel picks, or the first free one of
    ``DOCMILL_BENCH_PORTS`` (``LOW-HIGH``), so that benches run side by side
    on a shared machine can each keep to a range of their own.
    """
    ports = os.environ.get("DOCMILL_BENCH_PORTS")
    if not ports:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            return int(probe.getsockname()[1])
    low, _, high = ports.partition("-")
    for port in range(int(low), int(high or low) + 1):
        with socket.socket() as probe, contextlib.suppress(OSError):
            probe.bind(("127.0.0.1", port))
            return port
    raise RuntimeError(f"no free port in DOCMILL_BENCH_PORTS={ports}")


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile; ``nan`` for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def tree_rss(process: psutil.Process) -> tuple[int, int, int]:
    """
    Memory of ``process`` and its descendants, in bytes: its own RSS, the
    RSS sum of the tree, and the PSS sum of the tree.

    Forked children share pages with their parent, so the RSS sum counts a
    shared page once per process: an upper bound, the safe side for a memory
    target. PSS splits each shared page among its sharers, so its sum is what
    the tree really occupies.
    """
    try:
        own = process.memory_full_info()
        children = process.children(recursive=True)
    except psutil.Error:
        return 0, 0, 0
    rss, pss = own.rss, own.pss
    for child in children:
        with contextlib.suppress(psutil.Error):
            info = child.memory_full_info()
            rss += info.rss
            pss += info.pss
    return own.rss, rss, pss


class RssSampler:
    """Samples a process tree's memory in a thread until stopped."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.process = psutil.Process(pid)
        self.interval = interval
        self.peak_own = self.peak_tree = self.peak_pss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def sample(self) -> None:
        own, tree, pss = tree_rss(self.process)
        self.peak_own = max(self.peak_own, own)
        self.peak_tree = max(self.peak_tree, tree)
        self.peak_pss = max(self.peak_pss, pss)

    def reset(self) -> None:
        self.peak_own = self.peak_tree = self.peak_pss = 0
        self.sample()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()


@dataclass
class Server:
    """
    One ``docmill serve`` (or ``docmill worker``) subprocess that we started.

    It leads its own process group, so stopping it also stops the extraction
    children it forked, and nothing else.
    """

    args: list[str]
    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / "process.log"
        env = os.environ | BENCH_ENV | self.env
        # A file, not a pipe: nobody reads the log while the bench runs, and a
        # full pipe would stall the server.
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [str(DOCMILL), *self.args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.data_dir,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"server not ready after {timeout}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        text = self.log_path.read_text("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        # Extraction children left behind in the group go with it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)


def serve(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> Server:
    """A started, ready ``docmill serve`` on a free port."""
    port = free_port()
    server = Server(
        ["serve", "--host", "127.0.0.1", "--port", str(port), *args],
        data_dir,
        env or {},
        port,
    )
    server.start()
    try:
        server.wait_ready()
    except BaseException:
        server.stop()
        raise
    return server


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    try:
        yield server
    finally:
        server.stop()


FINAL = frozenset({"completed", "failed", "cancelled"})


async def upload_all(
    url: str, files: list[Path], concurrency: int = 32, client: str = "raw"
) -> dict[str, float]:
    """
    Upload every file concurrently; return each document's submit start time.

    ``raw`` (the default) is a minimal keep-alive HTTP/1.1 client on asyncio
    streams that sends each file as the same multipart body httpx builds.
    httpx's async client cost the bench process about 5.4 ms of CPU per
    upload, as much as the server spent on it, on the same two cores the
    server and its extraction children were measured on: the service's
    figure was then partly the client's. ``httpx`` is kept to show that.
    """
    if client == "httpx":
        return await _upload_all_httpx(url, files, concurrency)
    bodies = {path: _multipart_body(path) for path in set(files)}
    host, port = url.removeprefix("http://").split(":")
    started: dict[str, float] = {}
    queue = list(reversed(files))

    async def one_connection() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while queue:
                head, body = bodies[queue.pop()]
                began = time.time()
                writer.write(head + body)
                response_head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in response_head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                answer = await reader.readexactly(length)
                if not response_head.startswith(b"HTTP/1.1 2"):
                    raise RuntimeError(f"upload refused: {response_head[:40]!r}")
                started[json.loads(answer)["id"]] = began
        finally:
            writer.close()

    await asyncio.gather(*(one_connection() for _ in range(concurrency)))
    return started


def _multipart_body(path: Path) -> tuple[bytes, bytes]:
    """The request head and body of a one-file upload, as httpx would send it."""
    boundary = os.urandom(16).hex()
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    body = b"".join(
        [
            f"--{boundary}\r\n".encode(),
            b'Content-Disposition: form-data; name="file"; filename="',
            path.name.encode(),
            f'"\r\nContent-Type: {content_type}\r\n\r\n'.encode(),
            path.read_bytes(),
            f"\r\n--{boundary}--\r\n".encode(),
        ]
    )
    head = (
        "POST /documents HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        f"content-type: multipart/form-data; boundary={boundary}\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode()
    return head, body


async def _upload_all_httpx(
    url: str, files: list[Path], concurrency: int
) -> dict[str, float]:
    contents = {path: path.read_bytes() for path in set(files)}
    started: dict[str, float] = {}
    limits = httpx.Limits(max_connections=concurrency)
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:

        async def one(path: Path) -> None:
            async with gate:
                began = time.time()
                response = await client.post(
                    "/documents", files={"file": (path.name, contents[path])}
                )
                response.raise_for_status()
                started[response.json()["id"]] = began

        await asyncio.gather(*(one(path) for path in files))
    return started


def wait_all_final(client: httpx.Client, timeout: float, poll: float = 0.5) -> bool:
    """
    Poll until every document is final; False on timeout.

    The counts come from ``/metrics``, which reads them in one GROUP BY: one
    snapshot, so a document cannot slip between two questions (a retried
    attempt goes back to pending). Listing every document each time, as this
    did first, cost the server under test noticeable CPU during the very
    run it measured.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = status_counts(client)
        if counts.get("pending", 0) == 0 and counts.get("processing", 0) == 0:
            return True
        time.sleep(poll)
    return False


def status_counts(client: httpx.Client) -> dict[str, int]:
    """Documents per status, as the server's /metrics gauges give them."""
    answer = client.get("/metrics")
    answer.raise_for_status()
    counts = {}
    for line in answer.text.splitlines():
        if line.startswith('docmill_documents{status="'):
            label, value = line.split(" ", 1)
            counts[label.split('"')[1]] = int(float(value))
    if not counts:
        raise RuntimeError("/metrics has no docmill_documents gauge")
    return counts


def all_documents(client: httpx.Client) -> list[dict[str, Any]]:
    """Every document, through the list endpoint's pages."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 500}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/documents", params=params)
        page.raise_for_status()
        body = page.json()
        items += body["items"]
        cursor = body["next_cursor"]
        if not cursor:
            return items


def parse_time(value: str) -> float:
    return datetime.datetime.fromisoformat(value).timestamp()


def versions(extra: dict[str, str] | None = None) -> dict[str, str]:
    found = {}
    for name in VERSIONED:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    found["python"] = platform.python_version()
    return found | (extra or {})


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def postgres_version() -> str:
    out = subprocess.run(
        ["psql", POSTGRES_ADMIN_URL, "-tAc", "SHOW server_version"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() or "unavailable"


def postgres_admin(sql: str) -> None:
    """Run one statement as the postgres user on the maintenance database."""
    subprocess.run(
        ["psql", POSTGRES_ADMIN_URL, "-v", "ON_ERROR_STOP=1", "-qc", sql],
        check=True,
        capture_output=True,
    )


def postgres_admin_on(database: str, sql: str) -> None:
    """Run one statement as the postgres user on one of our own databases."""
    if not database.startswith("docmill_bench"):
        raise ValueError(f"refusing to touch database {database!r}")
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + database
    subprocess.run(
        ["psql", url, "-v", "ON_ERROR_STOP=1", "-qc", sql],
        check=True,
        capture_output=True,
    )


@contextlib.contextmanager
def postgres_database(name: str) -> Iterator[str]:
    """
    A fresh, empty database of our own, dropped afterwards.

    The name must start with ``docmill_bench`` so this can never drop a
    database the tests or anyone else use.
    """
    if not name.startswith("docmill_bench"):
        raise ValueError(f"refusing to manage database {name!r}")
    postgres_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    postgres_admin(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        postgres_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def upgrade_database(database_url: str, data_dir: Path) -> None:
    """
    ``docmill db upgrade``: serve migrates only the embedded SQLite at start,
    so a PostgreSQL schema is made the way an operator makes it.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [str(DOCMILL), "db", "upgrade", "--database-url", database_url],
        check=True,
        capture_output=True,
        cwd=data_dir,
    )


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def verdict(ok: bool) -> str:
    return "pass" if ok else "MISS"


def write_results(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    # One file per run: two runs on one day must not overwrite each other.
    stamp = datetime.datetime.now().strftime("%Y-%m-%dT%H%M%S")
    path = RESULTS / f"{name}-{stamp}.json"
    path.write_text(json.dumps(payload, indent=1, default=str), "utf-8")
    return path


def header(name: str, quick: bool, commit: str) -> dict[str, Any]:
    return {
        "bench": name,
        "commit": commit,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "machine": machine(),
        "versions": versions(),
    }
