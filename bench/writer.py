"""
What the SQLite writer spends per document: CPU, WAL bytes, pages, syncs.

Run from the repository root with the dev venv's python:

    python bench/writer.py [--count 300] [--groups 1,4] [--rounds 3]

No server and no children: the corpus (``hostile/`` left out) is extracted
once in this process, then each round makes a fresh database (``docmill db
upgrade``'s migrations), submits ``--count`` documents through
``JobStore.submit`` and drives the worker's hot writes through the same
call the group commit makes (``JobStore._write_results``), each
transaction holding ``g`` results, the ``g`` starts that follow them and a
claim of ``g`` more, as a worker's slots do in steady state. Measured over
that phase only: the process's CPU (the writer thread is the only busy
one), bytes written (``wchar`` of ``/proc/self/io``), write and sync system
calls (``syscw``, and ``fdatasync`` counted by a wrapper is not possible
from here, so the WAL's frames are counted instead: ``wal_frames`` is the
bytes written divided by a frame's size). Submissions are measured apart.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import pickle
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
CACHE = Path(tempfile.gettempdir()) / "docmill-bench-writer-payloads.pickle"


def payloads() -> list[tuple[str, bytes, dict[str, Any]]]:
    """(name, original, payload) for each corpus file that extracts."""
    if CACHE.exists():
        return pickle.loads(CACHE.read_bytes())
    from docmill.exceptions import ExtractionError
    from docmill.extract.base import Limits
    from docmill.extract.child import extract_in_process

    found = []
    for path in sorted(CORPUS.rglob("*")):
        if not path.is_file() or "hostile" in path.parts or path.suffix == ".tsv":
            continue
        try:
            payload = extract_in_process(path, path.name, Limits())
        except ExtractionError:
            continue
        found.append((path.name, path.read_bytes()[:65536], payload))
    CACHE.write_bytes(pickle.dumps(found))
    return found


def io_counters() -> dict[str, int]:
    lines = Path("/proc/self/io").read_text().split("\n")
    return {k: int(v) for k, v in (line.split(": ") for line in lines if line)}


async def one_round(
    files: list[tuple[str, bytes, dict[str, Any]]], count: int, group: int
) -> dict[str, float]:
    from docmill.db.engine import create_engine
    from docmill.db.migrate import upgrade
    from docmill.queue.store import JobStore, NewDocument

    with tempfile.TemporaryDirectory(prefix="docmill-writer-") as scratch:
        engine = create_engine(f"sqlite+aiosqlite:///{scratch}/docmill.db")
        await upgrade(engine)
        store = JobStore(engine)
        chosen = [files[n % len(files)] for n in range(count)]
        submitted = time.process_time()
        io_before = io_counters()
        for first in range(0, count, 64):
            await asyncio.gather(
                *(
                    store.submit(
                        NewDocument(
                            source="upload",
                            sha256=hashlib.sha256(data).hexdigest(),
                            size_bytes=len(data),
                            storage_key=f"k{first + n}",
                            filename=name,
                            original_bytes=data,
                        )
                    )
                    for n, (name, data, _) in enumerate(chosen[first : first + 64])
                )
            )
        submit_cpu = time.process_time() - submitted
        submit_io = io_counters()
        by_id = {}
        worker = "bench:1"
        _, (held,) = await store._write_results([], [(worker, group)])
        started = time.process_time()
        io_start = io_counters()
        commits = 0
        running: list[Any] = []
        while held or running:
            items = [(c, by_id[c.document_id]) for c in running]
            items += [(c, None) for c in held]
            # Payloads are looked up by the claim's document once it starts.
            outcomes, claimed = await store._write_results(
                items, [(worker, group)] if held else []
            )
            assert not any(isinstance(o, Exception) for o in outcomes), outcomes
            commits += 1
            running = held
            for claim in running:
                by_id[claim.document_id] = chosen[len(by_id) % len(chosen)][2]
            held = claimed[0] if claimed else []
        cpu = time.process_time() - started
        io_end = io_counters()
        await store.close()
        await engine.dispose()
    return {
        "submit_cpu_ms_per_doc": submit_cpu * 1000 / count,
        "submit_kib_per_doc": (submit_io["wchar"] - io_before["wchar"]) / 1024 / count,
        "cpu_ms_per_doc": cpu * 1000 / count,
        "kib_per_doc": (io_end["wchar"] - io_start["wchar"]) / 1024 / count,
        "writes_per_doc": (io_end["syscw"] - io_start["syscw"]) / count,
        "commits": commits,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--groups", default="1,4")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    files = payloads()
    groups = [int(g) for g in args.groups.split(",")]
    figures: dict[int, list[dict[str, float]]] = {g: [] for g in groups}
    for _ in range(args.rounds):
        for group in groups:
            figures[group].append(await one_round(files, args.count, group))
    load = os.getloadavg()
    print(f"{len(files)} corpus payloads, {args.count} documents, load {load[0]:.1f}")
    keys = list(figures[groups[0]][0])
    print("| results a commit | " + " | ".join(keys) + " |")
    print("|---:|" + "---:|" * len(keys))
    for group in groups:
        medians = [statistics.median(r[k] for r in figures[group]) for k in keys]
        print(f"| {group} | " + " | ".join(f"{m:.2f}" for m in medians) + " |")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    asyncio.run(main())
