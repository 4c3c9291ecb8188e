"""
End to end through the HTTP API, beside ``docmill extract`` on the same files.

Run from the repository root with the dev venv's python:

    python bench/service.py [--quick] [--rounds 3] [--count 300] [--slots 2]
        [--client httpx]

Each round starts ``docmill serve --workers 2`` on a free 127.0.0.1 port with
a fresh temporary data directory (SQLite), uploads ``--count`` real files
(the corpus minus ``hostile/``, cycled) concurrently over 32 keep-alive
connections of a minimal HTTP/1.1 client (``--client httpx`` uses httpx's, which
cost as much CPU per upload as the server did), and waits until none is pending
or processing; the server's and its children's CPU per document are recorded.
In the same round, in alternating order, it runs
``docmill extract -j 2 --no-text`` on the same list of paths (``--slots N``
runs both with N extraction slots). A document's
time to completed is the server's ``finished_at`` minus the moment the client
began sending it (one machine, one clock). After the rounds, one server takes
a generated 1 GiB upload, and the growth of its RSS is reported.

Markdown goes to stdout, the raw figures to
``bench/results/service-<date>T<time>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import resource
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import _harness as h
import httpx
import psutil

TARGET_RATIO = 0.85
TARGET_PEAK_RSS_MB = 400
TARGET_BIG_GROWTH_MB = 50
FINISH_TIMEOUT_SECONDS = 900
MB = 2**20


def thread_cpu_seconds(process: psutil.Process) -> tuple[float, float]:
    """
    CPU seconds of ``process``'s main thread (the event loop) and of its
    other threads (on SQLite, mostly the writer's).
    """
    loop = others = 0.0
    for thread in process.threads():
        if thread.id == process.pid:
            loop += thread.user_time + thread.system_time
        else:
            others += thread.user_time + thread.system_time
    return loop, others


def cpu_seconds(process: psutil.Process) -> tuple[float, float]:
    """CPU seconds (user + system) of ``process`` and of its live descendants."""
    own = process.cpu_times()
    children = 0.0
    for child in process.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            times = child.cpu_times()
            children += times.user + times.system
    return own.user + own.system, children


def run_service(
    files: list[Path], workdir: Path, client: str, slots: int
) -> dict[str, Any]:
    server = h.serve(workdir / "service", "--workers", str(slots))
    with (
        h.running(server),
        h.RssSampler(server.pid) as rss,
        httpx.Client(base_url=server.url, timeout=60) as http,
    ):
        # Warm-up: the extraction children and their imports start on the
        # first documents; a long-running service has paid that already.
        for i in range(4):
            http.post("/documents", json={"content": f"warm-up {i}"})
        h.wait_all_final(http, 60)
        warm_ids = {doc["id"] for doc in h.all_documents(http)}
        rss.reset()

        process = psutil.Process(server.pid)
        cpu_before = cpu_seconds(process)
        threads_before = thread_cpu_seconds(process)
        started = asyncio.run(h.upload_all(server.url, files, client=client))
        uploaded = time.time()
        finished_in_time = h.wait_all_final(http, FINISH_TIMEOUT_SECONDS)
        # Children replaced during the run (after a kill) take their CPU
        # with them: the children's figure is a lower bound.
        cpu_after = cpu_seconds(process)
        threads_after = thread_cpu_seconds(process)
        documents = [doc for doc in h.all_documents(http) if doc["id"] not in warm_ids]

    first = min(started.values())
    finished = {
        doc["id"]: h.parse_time(doc["finished_at"])
        for doc in documents
        if doc["finished_at"]
    }
    latencies = [finished[i] - started[i] for i in finished if i in started]
    elapsed = max(finished.values()) - first
    return {
        "documents": len(files),
        "finished_in_time": finished_in_time,
        "statuses": dict(Counter(doc["status"] for doc in documents)),
        "upload_seconds": uploaded - first,
        "elapsed_seconds": elapsed,
        "docs_per_second": len(files) / elapsed,
        "p50_seconds": h.percentile(latencies, 0.50),
        "p99_seconds": h.percentile(latencies, 0.99),
        "peak_rss_tree_mb": rss.peak_tree / MB,
        "peak_pss_tree_mb": rss.peak_pss / MB,
        "peak_rss_server_mb": rss.peak_own / MB,
        "server_cpu_ms_per_document": 1000
        * (cpu_after[0] - cpu_before[0])
        / len(files),
        "children_cpu_ms_per_document": 1000
        * (cpu_after[1] - cpu_before[1])
        / len(files),
        "loop_thread_cpu_ms_per_document": 1000
        * (threads_after[0] - threads_before[0])
        / len(files),
        "other_threads_cpu_ms_per_document": 1000
        * (threads_after[1] - threads_before[1])
        / len(files),
        "per_document": [
            {
                "filename": doc["filename"],
                "status": doc["status"],
                "attempts": doc["attempts"],
                "error": (doc["error"] or {}).get("code"),
                "seconds": finished.get(doc["id"], 0) - started.get(doc["id"], 0),
                "processing_ms": (doc["result"] or {}).get("processing_ms"),
            }
            for doc in documents
        ],
    }


SUMMARY = re.compile(r"(\d+) file\(s\) in ([\d.]+)s: (\d+) completed, (\d+) failed")


def run_extract(files: list[Path], workdir: Path, slots: int) -> dict[str, Any]:
    out = workdir / "extract.jsonl"
    command = [
        *(str(h.DOCMILL), "extract", "-j", str(slots), "--no-text"),
        *map(str, files),
    ]
    # Not the benches' own variables (DOCMILL_BENCH_PORTS): any DOCMILL_
    # variable makes `extract` read its settings through pydantic-settings
    # (docmill.extract_settings), 0.15 s more of wall time than a user without
    # them waits, which flattered the service's ratio.
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.upper().startswith("DOCMILL_BENCH_")
    }
    # Every process of the run, extract's children included: the servers of
    # the other half of the round are never reaped while this one runs.
    usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    with out.open("wb") as stdout:
        process = subprocess.Popen(
            command, stdout=stdout, stderr=subprocess.PIPE, cwd=workdir, env=env
        )
        with h.RssSampler(process.pid) as rss:
            _, stderr = process.communicate(timeout=FINISH_TIMEOUT_SECONDS)
    wall = time.perf_counter() - began
    usage_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (usage_after.ru_utime + usage_after.ru_stime) - (
        usage_before.ru_utime + usage_before.ru_stime
    )
    summary = SUMMARY.search(stderr.decode("utf-8", "replace"))
    inner = float(summary.group(2)) if summary else float("nan")
    statuses = Counter(
        '"status": "completed"' in line for line in out.read_text("utf-8").splitlines()
    )
    return {
        "documents": len(files),
        "exit_code": process.returncode,
        "statuses": {"completed": statuses[True], "failed": statuses[False]},
        "wall_seconds": wall,
        # extract's own clock: from its first file to its last, without the
        # interpreter start and imports that the wall time includes.
        "inner_seconds": inner,
        "docs_per_second": len(files) / wall,
        "docs_per_second_inner": len(files) / inner,
        "cpu_ms_per_document": 1000 * cpu / len(files),
        "peak_rss_tree_mb": rss.peak_tree / MB,
        "peak_pss_tree_mb": rss.peak_pss / MB,
    }


def write_big_file(path: Path, size: int) -> None:
    """``size`` bytes of repeated prose: text the whole read path accepts."""
    line = b"The quick brown fox jumps over the lazy dog, again and again. 0123456789\n"
    block = line * (MB // len(line))
    with path.open("wb") as stream:
        written = 0
        while written < size:
            piece = block[: size - written]
            stream.write(piece)
            written += len(piece)


def run_big_upload(workdir: Path, size: int) -> dict[str, Any]:
    """Upload one ``size``-byte file; how much did the server's RSS grow?"""
    big = workdir / "big.txt"
    write_big_file(big, size)
    server = h.serve(
        workdir / "big-server",
        "--workers",
        "2",
        "--max-upload-bytes",
        str(2 * size),
        "--job-timeout-seconds",
        "120",
        # One attempt: the question is memory, not how retries behave.
        "--max-attempts",
        "1",
    )
    try:
        with (
            h.running(server),
            httpx.Client(base_url=server.url, timeout=600) as client,
        ):
            client.post("/documents", json={"content": "warm-up"})
            h.wait_all_final(client, 60)
            process = psutil.Process(server.pid)
            time.sleep(0.5)
            base_own, base_tree, base_pss = h.tree_rss(process)
            with h.RssSampler(server.pid) as upload_rss:
                began = time.perf_counter()
                with big.open("rb") as stream:
                    response = client.post(
                        "/documents", files={"file": ("big.txt", stream)}
                    )
                upload_seconds = time.perf_counter() - began
            response.raise_for_status()
            document_id = response.json()["id"]
            with h.RssSampler(server.pid) as processing_rss:
                h.wait_all_final(client, 600)
            final = client.get(f"/documents/{document_id}").json()
    finally:
        big.unlink(missing_ok=True)
    return {
        "size_bytes": size,
        "upload_seconds": upload_seconds,
        "status": final["status"],
        "error": final.get("error"),
        "baseline_server_mb": base_own / MB,
        "baseline_tree_mb": base_tree / MB,
        "baseline_pss_tree_mb": base_pss / MB,
        "upload_growth_server_mb": (upload_rss.peak_own - base_own) / MB,
        "upload_growth_tree_mb": (upload_rss.peak_tree - base_tree) / MB,
        "processing_growth_server_mb": (processing_rss.peak_own - base_own) / MB,
        "processing_growth_tree_mb": (processing_rss.peak_tree - base_tree) / MB,
    }


def summarise(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    service = [r["service"] for r in rounds]
    extract = [r["extract"] for r in rounds]
    return {
        "service_docs_per_second": h.median([s["docs_per_second"] for s in service]),
        "service_p50_seconds": h.median([s["p50_seconds"] for s in service]),
        "service_p99_seconds": h.median([s["p99_seconds"] for s in service]),
        "extract_docs_per_second": h.median([e["docs_per_second"] for e in extract]),
        "extract_docs_per_second_inner": h.median(
            [e["docs_per_second_inner"] for e in extract]
        ),
        "ratio": h.median(
            [
                r["service"]["docs_per_second"] / r["extract"]["docs_per_second"]
                for r in rounds
            ]
        ),
        "ratio_inner": h.median(
            [
                r["service"]["docs_per_second"] / r["extract"]["docs_per_second_inner"]
                for r in rounds
            ]
        ),
        "server_cpu_ms_per_document": h.median(
            [s["server_cpu_ms_per_document"] for s in service]
        ),
        "children_cpu_ms_per_document": h.median(
            [s["children_cpu_ms_per_document"] for s in service]
        ),
        "loop_thread_cpu_ms_per_document": h.median(
            [s["loop_thread_cpu_ms_per_document"] for s in service]
        ),
        "other_threads_cpu_ms_per_document": h.median(
            [s["other_threads_cpu_ms_per_document"] for s in service]
        ),
        "extract_cpu_ms_per_document": h.median(
            [e["cpu_ms_per_document"] for e in extract]
        ),
        "peak_rss_tree_mb": max(s["peak_rss_tree_mb"] for s in service),
        "peak_rss_server_mb": max(s["peak_rss_server_mb"] for s in service),
        "peak_pss_tree_mb": max(s["peak_pss_tree_mb"] for s in service),
        "extract_peak_rss_tree_mb": max(e["peak_rss_tree_mb"] for e in extract),
        "extract_peak_pss_tree_mb": max(e["peak_pss_tree_mb"] for e in extract),
    }


def report(raw: dict[str, Any]) -> str:
    s = raw["summary"]
    n = raw["rounds"][0]["service"]["documents"]
    slots = raw["slots"]
    rows = [
        [
            f"service (`serve --workers {slots}`, SQLite)",
            f"{s['service_docs_per_second']:.1f}",
            f"{s['service_p50_seconds']:.2f}",
            f"{s['service_p99_seconds']:.2f}",
            f"{s['peak_rss_tree_mb']:.0f} / {s['peak_pss_tree_mb']:.0f}"
            f" (server alone {s['peak_rss_server_mb']:.0f})",
        ],
        [
            f"`docmill extract -j {slots} --no-text` (wall)",
            f"{s['extract_docs_per_second']:.1f}",
            "",
            "",
            f"{s['extract_peak_rss_tree_mb']:.0f}"
            f" / {s['extract_peak_pss_tree_mb']:.0f}",
        ],
        [
            "`docmill extract` (own clock, no start-up)",
            f"{s['extract_docs_per_second_inner']:.1f}",
            "",
            "",
            "",
        ],
    ]
    lines = [
        f"{n} documents per round, {len(raw['rounds'])} round(s), medians",
        "",
        h.markdown_table(
            [
                "run",
                "docs/s",
                "p50 to completed (s)",
                "p99 (s)",
                "peak RSS / PSS of the tree (MB)",
            ],
            rows,
        ),
        "",
    ]
    targets = [
        [
            "service / extract (wall)",
            f"{s['ratio']:.2f}x",
            f">= {TARGET_RATIO}x",
            h.verdict(s["ratio"] >= TARGET_RATIO),
        ],
        [
            "service / extract (own clock)",
            f"{s['ratio_inner']:.2f}x",
            f">= {TARGET_RATIO}x",
            h.verdict(s["ratio_inner"] >= TARGET_RATIO),
        ],
        [
            "peak RSS of the server tree (sum of RSS)",
            f"{s['peak_rss_tree_mb']:.0f} MB",
            f"< {TARGET_PEAK_RSS_MB} MB",
            h.verdict(s["peak_rss_tree_mb"] < TARGET_PEAK_RSS_MB),
        ],
        [
            "peak memory of the server tree (sum of PSS)",
            f"{s['peak_pss_tree_mb']:.0f} MB",
            f"< {TARGET_PEAK_RSS_MB} MB",
            h.verdict(s["peak_pss_tree_mb"] < TARGET_PEAK_RSS_MB),
        ],
    ]
    big = raw.get("big_upload")
    if big:
        gb = big["size_bytes"] / 2**30
        targets += [
            [
                f"{gb:g} GiB upload: server RSS growth",
                f"{big['upload_growth_server_mb']:.1f} MB "
                f"(tree {big['upload_growth_tree_mb']:.1f})",
                f"< {TARGET_BIG_GROWTH_MB} MB",
                h.verdict(big["upload_growth_server_mb"] < TARGET_BIG_GROWTH_MB),
            ],
            [
                f"{gb:g} GiB, while processed: server RSS growth",
                f"{big['processing_growth_server_mb']:.1f} MB "
                f"(tree {big['processing_growth_tree_mb']:.1f}; "
                f"ended {big['status']}"
                + (f" {big['error']['code']}" if big.get("error") else "")
                + ")",
                f"< {TARGET_BIG_GROWTH_MB} MB",
                h.verdict(big["processing_growth_server_mb"] < TARGET_BIG_GROWTH_MB),
            ],
        ]
    lines += [h.markdown_table(["figure", "measured", "target", ""], targets)]
    statuses = raw["rounds"][0]
    ceiling = s["extract_cpu_ms_per_document"] / (
        s["server_cpu_ms_per_document"] + s["children_cpu_ms_per_document"]
    )
    lines += [
        "",
        f"CPU per document while the service ran: server process "
        f"{s['server_cpu_ms_per_document']:.2f} ms (event loop thread "
        f"{s['loop_thread_cpu_ms_per_document']:.2f}, other threads "
        f"{s['other_threads_cpu_ms_per_document']:.2f}), extraction children "
        f"{s['children_cpu_ms_per_document']:.2f} ms (upload client: "
        f"{raw['client']}; server: {_server_stack(raw['versions'])}). "
        f"`docmill extract`, all its processes: "
        f"{s['extract_cpu_ms_per_document']:.2f} ms. With every core busy, "
        f"documents/s go as the inverse of CPU per document, so the service "
        f"can reach at most about {ceiling:.2f}x "
        f"of `extract` here (the upload client's CPU not counted).",
        "",
        f"Outcomes, round 1: service {statuses['service']['statuses']}, "
        f"extract {statuses['extract']['statuses']}.",
    ]
    return "\n".join(lines)


def _server_stack(versions: dict[str, str]) -> str:
    """What uvicorn parses HTTP with and runs on, as it picks them."""
    parser = "httptools" if "httptools" in versions else "h11"
    loop = "uvloop" if "uvloop" in versions else "asyncio"
    return f"{parser}, {loop}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--quick", action="store_true", help="60 files, 1 round")
    parser.add_argument("--count", type=int, help="documents per round (300)")
    parser.add_argument("--rounds", type=int, help="rounds (3)")
    parser.add_argument(
        "--big-gb", type=float, help="size of the big upload in GiB (1; 0: skip)"
    )
    parser.add_argument(
        "--working-tree",
        action="store_true",
        help="measure src/ as it is on disk, not the committed HEAD",
    )
    parser.add_argument(
        "--client",
        choices=["raw", "httpx"],
        default="raw",
        help="the upload client: raw HTTP/1.1 (default) or httpx, to compare",
    )
    parser.add_argument(
        "--slots",
        type=int,
        default=2,
        help="extraction slots on both sides: serve --workers N, extract -j N (2;"
        " 1 leaves the server a core of its own on this 2-core VM)",
    )
    args = parser.parse_args()
    commit = h.use_snapshot(args.working_tree)
    count = args.count or (60 if args.quick else 300)
    rounds = args.rounds or (1 if args.quick else 3)
    big_gb = args.big_gb if args.big_gb is not None else (0.25 if args.quick else 1)
    files = h.repeat_to(h.corpus_files(), count)

    raw: dict[str, Any] = h.header("service", args.quick, commit)
    raw["rounds"] = []
    raw["client"] = args.client
    raw["slots"] = args.slots
    workdir = Path(tempfile.mkdtemp(prefix="docmill-bench-service-"))
    try:
        for number in range(rounds):
            outcome: dict[str, Any] = {}
            order = (
                ["service", "extract"] if number % 2 == 0 else ["extract", "service"]
            )
            for kind in order:
                place = workdir / f"round{number}-{kind}"
                place.mkdir()
                if kind == "service":
                    outcome[kind] = run_service(files, place, args.client, args.slots)
                else:
                    outcome[kind] = run_extract(files, place, args.slots)
                shutil.rmtree(place, ignore_errors=True)
            raw["rounds"].append(outcome)
            service, extract = outcome["service"], outcome["extract"]
            print(
                f"round {number + 1}: service {service['docs_per_second']:.1f} docs/s,"
                f" extract {extract['docs_per_second']:.1f} docs/s",
                flush=True,
            )
        if big_gb > 0:
            raw["big_upload"] = run_big_upload(workdir, int(big_gb * 2**30))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    raw["summary"] = summarise(raw["rounds"])
    path = h.write_results("service", raw)
    print(report(raw))
    print(f"\nraw figures: {path.relative_to(h.REPO)}")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
