"""
Documents per second with separate worker processes on PostgreSQL (issue 4).

Run from the repository root with the dev venv's python:

    python bench/throughput.py [--quick] [--rounds 3] [--count 200]

One ``docmill serve --no-workers`` API runs against ``docmill_bench_tp`` on
the PostgreSQL server at 127.0.0.1:5432 (created here, dropped at the end;
schema by ``docmill db upgrade``). Each configuration starts its own
``docmill worker`` processes, every one with its own data directory, so the
originals can only travel through the database:

- 1 process, ``--concurrency 1``;
- 2 processes, ``--concurrency 1`` each;
- 1 process, ``--concurrency 2``.

Once the workers have read a few warm-up documents, the same ``--count``
real corpus files (``hostile/`` left out, cycled) are uploaded concurrently;
documents per second runs from the first upload to the last ``finished_at``.
The tables are emptied between configurations, which take turns within each
round; the table shows medians. Markdown goes to stdout, the raw figures to
``bench/results/throughput-<date>T<time>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import _harness as h
import httpx

CONFIGS = {
    "1 worker x 1 slot": [1],
    "2 workers x 1 slot": [1, 1],
    "1 worker x 2 slots": [2],
}
FINISH_TIMEOUT_SECONDS = 900


def empty_tables(database: str) -> None:
    # CASCADE reaches every table that points at documents (contents,
    # attempts, and whatever later migrations add).
    h.postgres_admin_on(
        database, "TRUNCATE documents, blobs, blob_chunks RESTART IDENTITY CASCADE"
    )


def start_workers(
    url: str, slots: list[int], workdir: Path, label: str
) -> list[h.Server]:
    workers = []
    for number, concurrency in enumerate(slots):
        worker = h.Server(
            [
                "worker",
                "--concurrency",
                str(concurrency),
                "--database-url",
                url,
                "--data-dir",
                str(workdir / f"{label}-worker{number}"),
            ],
            workdir / f"{label}-worker{number}",
        )
        worker.start()
        workers.append(worker)
    return workers


def run_config(
    api: h.Server, url: str, slots: list[int], files: list[Path], workdir: Path
) -> dict[str, Any]:
    label = "-".join(map(str, slots)) + f"-{time.monotonic_ns()}"
    workers = start_workers(url, slots, workdir, label)
    try:
        with httpx.Client(base_url=api.url, timeout=60) as client:
            # Warm-up: each slot's extraction child starts on its first
            # document; a worker that has run a while has paid for that.
            for n in range(2 * sum(slots)):
                client.post("/documents", json={"content": f"warm-up {n}"})
            if not h.wait_all_final(client, 120):
                raise RuntimeError("workers did not start:\n" + workers[0].log_tail())
            warm = {doc["id"] for doc in h.all_documents(client)}

            started = asyncio.run(h.upload_all(api.url, files))
            finished_in_time = h.wait_all_final(client, FINISH_TIMEOUT_SECONDS)
            documents = [d for d in h.all_documents(client) if d["id"] not in warm]
    finally:
        for worker in workers:
            worker.stop()
    first = min(started.values())
    finished = {
        d["id"]: h.parse_time(d["finished_at"]) for d in documents if d["finished_at"]
    }
    latencies = [finished[i] - started[i] for i in finished if i in started]
    elapsed = max(finished.values()) - first
    return {
        "documents": len(files),
        "finished_in_time": finished_in_time,
        "statuses": dict(Counter(d["status"] for d in documents)),
        "retried": sum(d["attempts"] > 1 for d in documents),
        "elapsed_seconds": elapsed,
        "docs_per_second": len(files) / elapsed,
        "p50_seconds": h.percentile(latencies, 0.5),
        "p99_seconds": h.percentile(latencies, 0.99),
    }


def report(raw: dict[str, Any]) -> str:
    rows = []
    base = raw["summary"]["1 worker x 1 slot"]["docs_per_second"]
    for name, s in raw["summary"].items():
        rows.append(
            [
                name,
                f"{s['docs_per_second']:.1f}",
                f"{s['docs_per_second'] / base:.2f}x",
                f"{s['p50_seconds']:.1f}",
                f"{s['p99_seconds']:.1f}",
                s["statuses"],
            ]
        )
    return "\n".join(
        [
            f"PostgreSQL, `serve --no-workers` + `docmill worker`, "
            f"{raw['count']} documents, {raw['rounds']} round(s), medians",
            "",
            h.markdown_table(
                [
                    "workers",
                    "docs/s",
                    "vs 1 x 1",
                    "p50 to completed (s)",
                    "p99 (s)",
                    "outcomes (round 1)",
                ],
                rows,
            ),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--quick", action="store_true", help="60 documents, 1 round")
    parser.add_argument("--count", type=int, help="documents per configuration (200)")
    parser.add_argument("--rounds", type=int, help="rounds (3)")
    parser.add_argument("--working-tree", action="store_true")
    args = parser.parse_args()
    commit = h.use_snapshot(args.working_tree)
    count = args.count or (60 if args.quick else 200)
    rounds = args.rounds or (1 if args.quick else 3)
    files = h.repeat_to(h.corpus_files(), count)

    raw: dict[str, Any] = h.header("throughput", args.quick, commit)
    raw["versions"]["postgresql"] = h.postgres_version()
    raw |= {"count": count, "rounds": rounds, "runs": {name: [] for name in CONFIGS}}
    database = "docmill_bench_tp"
    workdir = Path(tempfile.mkdtemp(prefix="docmill-bench-throughput-"))
    try:
        with h.postgres_database(database) as url:
            h.upgrade_database(url, workdir / "api")
            api = h.serve(workdir / "api", "--no-workers", "--database-url", url)
            with h.running(api):
                names = list(CONFIGS)
                for number in range(rounds):
                    shift = number % len(names)
                    for name in names[shift:] + names[:shift]:
                        empty_tables(database)
                        outcome = run_config(api, url, CONFIGS[name], files, workdir)
                        raw["runs"][name].append(outcome)
                        print(
                            f"round {number + 1}, {name}: "
                            f"{outcome['docs_per_second']:.1f} docs/s",
                            flush=True,
                        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    raw["summary"] = {
        name: {
            key: h.median([run[key] for run in runs])
            for key in ("docs_per_second", "p50_seconds", "p99_seconds")
        }
        | {"statuses": runs[0]["statuses"]}
        for name, runs in raw["runs"].items()
    }
    path = h.write_results("throughput", raw)
    print(report(raw))
    print(f"\nraw figures: {path.relative_to(h.REPO)}")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
