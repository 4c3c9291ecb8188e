"""
What PostgreSQL's search entry of a document costs: by PostgreSQL's parser
(before migration 0012) and by SQLite's words made in Python (since).

Run from the repository root with the dev venv's python:

    python bench/search_words.py [--rounds 5] [--repeat 4]

The corpus (``hostile/`` left out) is extracted once, as ``writer.py`` does
(and shares its cache). In a database of our own on 127.0.0.1:5432
(``docmill_bench_search_<pid>``, ``--prefix`` renames it; dropped at the
end) a ``document_search`` table of migration 0004's shape, GIN index
included, takes each text's
entry, one statement and one commit a document as a worker's write at one
result a commit; ``--repeat`` passes over the corpus a round, the table
emptied between rounds, the two ways alternated. Reported per document,
medians over the rounds: this process's CPU (the words are made here), the
server backend's CPU (``/proc/<pid>/stat``, so the server must run on this
machine) and the wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from pathlib import Path
from typing import Any

from writer import payloads

ADMIN_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
TABLE = (
    "CREATE TABLE document_search (document_id VARCHAR(32) PRIMARY KEY, "
    "body TSVECTOR NOT NULL)",
    "CREATE INDEX ix_document_search_body ON document_search USING GIN (body)",
)
PARSER = (
    "INSERT INTO document_search (document_id, body) "
    "VALUES (:id, strip(to_tsvector('simple', :body)))"
)


def backend_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def one_round(
    engine: Any, way: str, texts: list[str], repeat: int
) -> dict[str, float]:
    from sqlalchemy import text

    from docmill.queue import search

    async with engine.connect() as connection:
        pid = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        await connection.execute(text("TRUNCATE document_search"))
        await connection.commit()
        began = (time.perf_counter(), time.process_time(), backend_seconds(pid))
        for n in range(repeat * len(texts)):
            body = texts[n % len(texts)][: search.INDEXED_CHARS]
            if way == "parser":
                await connection.execute(text(PARSER), {"id": str(n), "body": body})
            else:
                await connection.execute(
                    search.POSTGRES_INDEX,
                    {"id": str(n), "words": search.text_words(body)},
                )
            await connection.commit()
        ended = (time.perf_counter(), time.process_time(), backend_seconds(pid))
    count = repeat * len(texts)
    wall, own, server = (
        1000 * (b - a) / count for a, b in zip(began, ended, strict=True)
    )
    return {"wall": wall, "client": own, "server": server}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=4)
    parser.add_argument(
        "--prefix",
        default="docmill_bench_search",
        help="of the database's name, for a server that restricts names",
    )
    args = parser.parse_args()

    from sqlalchemy import text

    from docmill.db.engine import create_engine

    texts = [payload["text"] for _, _, payload in payloads() if payload.get("text")]
    name = f"{args.prefix}_{os.getpid()}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine = create_engine(ADMIN_URL.rsplit("/", 1)[0] + "/" + name)
    try:
        async with engine.begin() as connection:
            for statement in TABLE:
                await connection.execute(text(statement))
        runs: dict[str, list[dict[str, float]]] = {"parser": [], "words": []}
        for _ in range(args.rounds):
            for way in runs:
                runs[way].append(await one_round(engine, way, texts, args.repeat))
    finally:
        await engine.dispose()
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        await admin.dispose()

    chars = sum(min(len(t), 500_000) for t in texts) / len(texts)
    print(f"{len(texts)} texts, {chars:,.0f} characters on average; ms a document:")
    for way, rounds in runs.items():
        medians = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
        print(
            f"{way:>6}: client {medians['client']:.3f}, "
            f"server {medians['server']:.3f}, wall {medians['wall']:.3f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
