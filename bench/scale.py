"""
The job store at 1,000 and at 1,000,000 documents, on SQLite and PostgreSQL.

Run from the repository root with the dev venv's python:

    python bench/scale.py [--quick] [--databases sqlite,postgres]

The schema comes from docmill's own migrations (``docmill.db.migrate.upgrade``)
in a database of our own: a SQLite file in a temporary directory, and
``docmill_bench_scale_<pid>`` on the PostgreSQL server at 127.0.0.1:5432
(created here, dropped at the end; the pid keeps two runs from dropping each
other's database). Rows are bulk-inserted with SQLAlchemy core into
docmill's tables, in the shape the service leaves them: 90% completed (each
with a ``document_contents`` row of a few hundred characters), 5% failed,
4.9% pending (the claim backlog), 0.1% processing (and every 20th of the
first thousand, so the small database has a full page of them), created in
time order over the last 30 days (ids grow with created_at; hashes are
random). At
1k, and again after growing to 1M (``--quick``: 100k), it times, each the
median of many calls through ``JobStore``:

- claim: ``claim_next`` then ``complete`` (the claimed row is put back to
  pending afterwards, untimed, so the backlog stays the same size);
- ``GET /documents/{id}``: ``get`` plus ``get_content`` on a random id;
- the first page of a filtered list: ``list(status=...)`` for each status;
- the full-text query (``list(q=...)``, first page) for a word in every
  completed document and for a word in one, when the schema has
  ``document_search`` (the search index is filled for every content row);
- the first page of a parser's documents (``list(parser=...)``): a rare
  parser, named at submission by one document in a thousand and run later
  on another one in a thousand (more among the first thousand, for a full
  page of each), and a common one, run on every tenth completed document
  (``document_fields`` rows).

An operation stops being sampled once it has taken 30 s in all (after at
least 5 calls); the JSON keeps each figure's sample count.

PostgreSQL is ANALYZEd after loading, as autovacuum would; SQLite is not,
because docmill never runs ANALYZE on it. Every statement's plan
(``EXPLAIN QUERY PLAN`` / ``EXPLAIN (ANALYZE, BUFFERS)`` in a rolled-back
transaction) at both sizes goes into the JSON, and the plans of the figures
that miss the 2x target are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import _harness as h

TARGET_RATIO = 2.0
BATCH = 5_000
STATUSES = [("completed", 0.90), ("failed", 0.05), ("pending", 0.049)]
TEXT = (
    "Quarterly report doc{n}. Revenue grew in every region; the board approved "
    "the budget and the new warehouse opens in spring. Contact finance for the "
    "detailed ledger and the auditors' notes on page {n}. "
)
# An operation stops being sampled once it has taken this long in total
# (and has at least MIN_SAMPLES), so a 3 s query cannot hold the bench for
# minutes; the JSON records how many samples each figure has.
OPERATION_BUDGET_SECONDS = 30.0
MIN_SAMPLES = 5


def pick_status(rng: random.Random) -> str:
    roll = rng.random()
    for status, share in STATUSES:
        if roll < share:
            return status
        roll -= share
    return "processing"


# The parsers of the list(parser=...) figures, and how their documents are
# picked by their number n.
RARE_PARSER, COMMON_PARSER = "receipts", "invoices"


def parsers_of(n: int, status: str) -> tuple[str | None, list[str]]:
    """The parser ``n`` was submitted with, and the parsers run on it since."""
    # The first thousand also hold a full first page of each half of the
    # rare parser's documents, as the large database does: a page of two
    # rows at 1k timed against one of fifty would flatter the ratio.
    first = n < 1_000
    submitted = RARE_PARSER if n % 1_000 == 7 or (first and n % 20 == 7) else None
    parsed = []
    if status == "completed":
        if n % 1_000 == 507 or (first and n % 10 == 2):
            parsed.append(RARE_PARSER)
        if n % 10 == 3:
            parsed.append(COMMON_PARSER)
    return submitted, parsed


def make_rows(
    start: int, count: int, rng: random.Random, origin: datetime, step: timedelta
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    documents, contents, fields = [], [], []
    now = datetime.now(UTC)
    for n in range(start, start + count):
        # Documents arrive in time order, as they do in service: ids and
        # created_at grow together, hashes are random.
        created = origin + n * step
        ms = int(created.timestamp() * 1000)
        document_id = f"{ms:012x}{rng.getrandbits(80):020x}"
        # The first thousand hold a full first page of processing documents
        # (every 20th), as the large database does at 0.1%: otherwise the
        # small figure timed a page of one row against a page of fifty.
        status = "processing" if n < 1_000 and n % 20 == 0 else pick_status(rng)
        final = status in ("completed", "failed")
        row = {
            "id": document_id,
            "title": f"report {n}",
            "filename": f"report-{n}.pdf",
            "source": "upload",
            "user_metadata": None,
            "sha256": f"{rng.getrandbits(256):064x}",
            "size_bytes": rng.randrange(1_000, 5_000_000),
            "storage_key": f"{rng.getrandbits(256):064x}",
            "status": status,
            "priority": 0,
            "attempts": 0 if status == "pending" else 1,
            "max_attempts": 3,
            "next_attempt_at": created,
            "lease_expires_at": (
                now + timedelta(seconds=30) if status == "processing" else None
            ),
            "worker_id": "bench:1" if status == "processing" else None,
            "claim_token": (
                f"{rng.getrandbits(128):032x}" if status == "processing" else None
            ),
            "progress": None,
            "error_code": "corrupt" if status == "failed" else None,
            "error_message": "damaged" if status == "failed" else None,
            "created_at": created,
            "updated_at": created,
            "started_at": created if status != "pending" else None,
            "finished_at": created + timedelta(seconds=1) if final else None,
            "mime_type": "application/pdf" if status == "completed" else None,
            "word_count": 40 if status == "completed" else None,
            "char_count": 250 if status == "completed" else None,
            "page_count": 1 if status == "completed" else None,
            "doc_metadata": {"title": f"report {n}"} if status == "completed" else None,
            "processing_ms": 12.5 if status == "completed" else None,
        }
        submitted, parsed = parsers_of(n, status)
        row["parser"] = submitted
        documents.append(row)
        for parser in parsed:
            fields.append(
                {
                    "document_id": document_id,
                    "parser": parser,
                    "parser_version": 1,
                    "fields": {"total": n},
                    "errors": {},
                    "matches": None,
                    "created_at": created + timedelta(seconds=2),
                    "document_created_at": created,
                }
            )
        if status == "completed":
            text = TEXT.format(n=n)
            contents.append(
                {
                    "document_id": document_id,
                    "text": text,
                    "markdown": None,
                    "pages": [text],
                    "children": [],
                    "warnings": [],
                }
            )
    return documents, contents, fields


async def grow(
    engine: Any, start: int, target: int, final: int, rng: random.Random
) -> float:
    """Insert rows ``start..target`` of ``final``; return the seconds it took."""
    from sqlalchemy import insert

    from docmill.db.engine import write_transaction
    from docmill.db.models import Document, DocumentContent, DocumentFields

    origin = datetime.now(UTC) - timedelta(days=30)
    step = timedelta(days=30) / final
    began = time.perf_counter()
    for offset in range(start, target, BATCH):
        documents, contents, fields = make_rows(
            offset, min(BATCH, target - offset), rng, origin, step
        )
        # One transaction per batch: SQLite's plain connections autocommit,
        # which would make every row its own commit.
        async with write_transaction(engine) as connection:
            await connection.execute(insert(Document.__table__), documents)
            if contents:
                await connection.execute(insert(DocumentContent.__table__), contents)
                if await has_search(connection):
                    statement, words = await search_insert(connection)
                    await connection.execute(
                        statement,
                        [
                            {"id": c["document_id"], **words(c["text"])}
                            for c in contents
                        ],
                    )
            if fields:
                if not await has_column(
                    connection, "document_fields", "document_created_at"
                ):
                    # Before migration 0010 a run did not keep its
                    # document's date.
                    for run in fields:
                        del run["document_created_at"]
                await connection.execute(insert(DocumentFields.__table__), fields)
    return time.perf_counter() - began


async def has_search(connection: Any) -> bool:
    """Whether the schema has the full-text index (migration 0004 and later)."""

    def _check(sync: Any) -> bool:
        from sqlalchemy import inspect

        return bool(inspect(sync).has_table("document_search"))

    return bool(await connection.run_sync(_check))


async def has_column(connection: Any, table: str, name: str) -> bool:
    from sqlalchemy import inspect

    def _check(sync: Any) -> bool:
        return any(
            column["name"] == name for column in inspect(sync).get_columns(table)
        )

    return bool(await connection.run_sync(_check))


async def search_insert(connection: Any) -> tuple[Any, Any]:
    """
    The statement ``docmill.queue.search.index_texts`` sends, for many rows,
    and what it binds of a text besides the document's id.
    """
    from sqlalchemy import inspect, text

    def _body(body: str) -> dict[str, Any]:
        return {"body": body}

    if connection.dialect.name != "sqlite":
        from docmill.queue import search

        if hasattr(search, "text_words"):
            # Migration 0012: the entry holds SQLite's words, made here.
            return search.POSTGRES_INDEX, lambda body: {
                "words": search.text_words(body)
            }
        statement = text(
            "INSERT INTO document_search (document_id, body) "
            "VALUES (:id, strip(to_tsvector('simple', :body)))"
        )
        return statement, _body

    def _columns(sync: Any) -> set[str]:
        return {column["name"] for column in inspect(sync).get_columns("documents")}

    if "seq" in await connection.run_sync(_columns):
        # Migration 0006: the entry's rowid is the document's queue number.
        statement = text(
            "INSERT INTO document_search (rowid, body) "
            "SELECT seq, :body FROM documents WHERE id = :id"
        )
        return statement, _body
    statement = text(
        "INSERT INTO document_search (document_id, body) VALUES (:id, :body)"
    )
    return statement, _body


class Recorder:
    """Keeps the SQL text and parameters of the statements a call sends."""

    def __init__(self, engine: Any) -> None:
        from sqlalchemy import event

        self.statements: list[tuple[str, Any]] = []
        self.on = False

        def before(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any):
            if self.on and not statement.lstrip().upper().startswith(
                ("BEGIN", "SELECT PG_NOTIFY", "COMMIT", "ROLLBACK")
            ):
                self.statements.append((statement, params))

        event.listen(engine.sync_engine, "before_cursor_execute", before)

    @contextlib.asynccontextmanager
    async def capture(self):  # type: ignore[no-untyped-def]
        self.statements, self.on = [], True
        try:
            yield self.statements
        finally:
            self.on = False


async def explain(engine: Any, statement: str, params: Any) -> str:
    """The plan of one statement as sent; PostgreSQL's is run and rolled back."""
    postgres = engine.dialect.name == "postgresql"
    prefix = "EXPLAIN QUERY PLAN "
    if postgres:
        # An INSERT that already ran would only run into its own key again.
        insert = statement.lstrip().upper().startswith("INSERT")
        prefix = "EXPLAIN " if insert else "EXPLAIN (ANALYZE, BUFFERS) "
    async with engine.connect() as connection:
        transaction = await connection.begin()
        try:
            result = await connection.exec_driver_sql(prefix + statement, params)
            rows = result.all()
        except Exception as exc:
            return f"(no plan: {type(exc).__name__}: {exc})"
        finally:
            await transaction.rollback()
    if postgres:
        return "\n".join(row[0] for row in rows)
    return "\n".join(f"{row[1]}|{row[2]}: {row[3]}" for row in rows)


async def put_back(engine: Any, document_id: str) -> None:
    from sqlalchemy import delete, update

    from docmill.db.models import Attempt, Document, DocumentContent
    from docmill.queue import search

    async with engine.begin() as connection:
        await connection.execute(
            update(Document)
            .where(Document.id == document_id)
            .values(status="pending", claim_token=None, worker_id=None, attempts=0)
        )
        await connection.execute(
            delete(DocumentContent).where(DocumentContent.document_id == document_id)
        )
        await connection.execute(
            delete(Attempt).where(Attempt.document_id == document_id)
        )
        # Its search entry goes with its content: a pending document has
        # neither, and complete() counts on that.
        await search.unindex(connection, [document_id])


PAYLOAD = {
    "mime_type": "text/plain",
    "word_count": 3,
    "char_count": 15,
    "page_count": 1,
    "metadata": {},
    "processing_ms": 1.0,
    "text": "claimed by bench",
    "markdown": None,
    "pages": ["claimed by bench"],
    "children": [],
    "warnings": [],
}


async def measure(
    engine: Any,
    store: Any,
    recorder: Recorder,
    samples: int,
    rng: random.Random,
    size: int,
) -> tuple[dict[str, dict[str, float]], dict[str, list[str]]]:
    """Time each operation up to ``samples`` times; also capture its plans."""
    from sqlalchemy import select

    from docmill.db.models import Document

    async with engine.connect() as connection:
        ids = list(
            (
                await connection.execute(
                    select(Document.id).order_by(Document.id).limit(200_000)
                )
            ).scalars()
        )
        search = await has_search(connection)
    timings: dict[str, list[float]] = {}
    plans: dict[str, list[str]] = {}

    async def claim_and_complete() -> None:
        began = time.perf_counter()
        claim = await store.claim_next("bench:1")
        claimed = time.perf_counter()
        await store.complete(claim, PAYLOAD)
        done = time.perf_counter()
        timings.setdefault("claim_next", []).append((claimed - began) * 1000)
        timings.setdefault("complete", []).append((done - claimed) * 1000)
        timings.setdefault("claim + complete", []).append((done - began) * 1000)
        await put_back(engine, claim.document_id)

    async def get() -> None:
        document_id = rng.choice(ids)
        await store.get(document_id)
        await store.get_content(document_id)

    operations: dict[str, Any] = {"get + get_content": get}
    for status in ("pending", "processing", "completed", "failed"):
        operations[f"list(status={status})"] = lambda status=status: store.list(
            status=status
        )
    if search:
        # A word in every completed document, and a word in one.
        operations["list(q=common word)"] = lambda: store.list(q="warehouse")
        operations["list(q=rare word)"] = lambda: store.list(
            q=f"doc{rng.randrange(size)}"
        )

    operations[f"list(parser={RARE_PARSER})"] = lambda: store.list(parser=RARE_PARSER)
    operations[f"list(parser={COMMON_PARSER})"] = lambda: store.list(
        parser=COMMON_PARSER
    )

    spent: dict[str, float] = {}
    for n in range(samples):
        if sum(timings.get("claim_next", [])) / 1000 < OPERATION_BUDGET_SECONDS:
            await claim_and_complete()
        for name, operation in operations.items():
            if n >= MIN_SAMPLES and spent.get(name, 0) > OPERATION_BUDGET_SECONDS:
                continue
            began = time.perf_counter()
            await operation()
            elapsed = time.perf_counter() - began
            spent[name] = spent.get(name, 0) + elapsed
            timings.setdefault(name, []).append(elapsed * 1000)

    # One more, recorded pass of each operation, for its plans.
    async with recorder.capture() as sent:
        claim = await store.claim_next("bench:1")
    plans["claim_next"] = [await explain(engine, *sql) for sql in sent[:1]]
    async with recorder.capture() as sent:
        await store.complete(claim, PAYLOAD)
    plans["complete"] = [await explain(engine, *sql) for sql in sent]
    await put_back(engine, claim.document_id)
    for name, operation in operations.items():
        async with recorder.capture() as sent:
            await operation()
        plans[name] = [await explain(engine, *sql) for sql in sent]

    figures = {
        name: {
            "median_ms": h.median(values),
            "p90_ms": h.percentile(values, 0.9),
            "samples": len(values),
        }
        for name, values in timings.items()
    }
    return figures, plans


async def bench_database(
    name: str, url: str, sizes: list[int], samples: int
) -> dict[str, Any]:
    from sqlalchemy import text

    from docmill.db.engine import create_engine
    from docmill.db.migrate import upgrade
    from docmill.queue.store import JobStore

    engine = create_engine(url)
    rng = random.Random(7)
    outcome: dict[str, Any] = {"sizes": {}}
    try:
        await upgrade(engine)
        recorder = Recorder(engine)
        store = JobStore(engine)
        loaded = 0
        for size in sizes:
            seconds = await grow(engine, loaded, size, sizes[-1], rng)
            loaded = size
            if engine.dialect.name == "postgresql":
                async with engine.connect() as connection:
                    autocommit = await connection.execution_options(
                        isolation_level="AUTOCOMMIT"
                    )
                    await autocommit.execute(text("VACUUM ANALYZE"))
            print(f"{name}: {size:,} rows loaded in {seconds:.0f}s", flush=True)
            figures, plans = await measure(engine, store, recorder, samples, rng, size)
            outcome["sizes"][str(size)] = {
                "load_seconds": seconds,
                "figures": figures,
                "plans": plans,
            }
    finally:
        await engine.dispose()
    return outcome


def report(raw: dict[str, Any]) -> str:
    small, large = (str(size) for size in raw["sizes"])
    rows, misses = [], []
    for database, outcome in raw["runs"].items():
        at_small = outcome["sizes"][small]["figures"]
        at_large = outcome["sizes"][large]["figures"]
        for figure in at_small:
            a, b = at_small[figure]["median_ms"], at_large[figure]["median_ms"]
            ratio = b / a
            ok = ratio <= TARGET_RATIO
            rows.append(
                [
                    database,
                    f"`{figure}`",
                    f"{a:.2f}",
                    f"{b:.2f}",
                    f"{ratio:.1f}x",
                    h.verdict(ok),
                ]
            )
            if not ok and figure in outcome["sizes"][large]["plans"]:
                misses.append((database, figure))
    lines = [
        f"median of {raw['samples']} calls each, milliseconds; target: the "
        f"{int(large):,} figure within {TARGET_RATIO:g}x of the {int(small):,} one",
        "",
        h.markdown_table(
            [
                "database",
                "operation",
                f"{int(small):,} docs",
                f"{int(large):,} docs",
                "ratio",
                "",
            ],
            rows,
        ),
    ]
    for database, figure in misses:
        plans = raw["runs"][database]["sizes"][large]["plans"][figure]
        lines += ["", f"Plan of `{figure}` on {database} at {int(large):,}:", ""]
        lines += ["```", *plans, "```"]
    return "\n".join(lines)


@contextlib.contextmanager
def postgres_database(name: str, keep: bool) -> Iterator[str]:
    if not keep:
        with h.postgres_database(name) as url:
            yield url
        return
    h.postgres_admin(f"CREATE DATABASE {name}")
    print(f"kept: PostgreSQL database {name}", flush=True)
    yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--quick", action="store_true", help="1k vs 100k, fewer calls")
    parser.add_argument("--large", type=int, help="rows of the large size (1M)")
    parser.add_argument("--samples", type=int, help="calls per operation (100)")
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--working-tree", action="store_true")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the databases (to study plans or migrations at scale)",
    )
    args = parser.parse_args()
    commit = h.use_snapshot(args.working_tree)
    sizes = [1_000, args.large or (100_000 if args.quick else 1_000_000)]
    samples = args.samples or (30 if args.quick else 100)

    raw: dict[str, Any] = h.header("scale", args.quick, commit)
    raw["versions"]["postgresql"] = h.postgres_version()
    raw |= {"sizes": sizes, "samples": samples, "runs": {}}
    workdir = Path(tempfile.mkdtemp(prefix="docmill-bench-scale-"))
    try:
        for database in args.databases.split(","):
            if database == "sqlite":
                url = f"sqlite+aiosqlite:///{workdir / 'scale.db'}"
                raw["runs"]["SQLite"] = asyncio.run(
                    bench_database("SQLite", url, sizes, samples)
                )
            else:
                name = f"docmill_bench_scale_{os.getpid()}"
                with postgres_database(name, args.keep) as url:
                    raw["runs"]["PostgreSQL"] = asyncio.run(
                        bench_database("PostgreSQL", url, sizes, samples)
                    )
    finally:
        if args.keep:
            print(f"kept: {workdir / 'scale.db'}", flush=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    path = h.write_results("scale", raw)
    print(report(raw))
    print(f"\nraw figures and every plan: {path.relative_to(h.REPO)}")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
