"""
Loopback load on the API: submit and status reads beside a bare endpoint.

Run from the repository root with the dev venv's python:

    python bench/api.py [--quick] [--rounds 3] [--seconds 10] [--client httpx]

``docmill serve --workers 0`` (API only: nothing is extracted, so the figures
are the API's alone) runs on a free 127.0.0.1 port, on SQLite and then on
PostgreSQL (a database of our own). A load generator in a separate process
keeps 64 clients busy for a bounded time and a bounded number of requests on
one of three phases:

- ``bare``: ``GET /healthz``, which touches no database;
- ``submit``: ``POST /documents`` with JSON ``{"content": ...}``, a few
  hundred bytes of text, different each time;
- ``status``: ``GET /documents/{id}`` over ids submitted earlier.

The phases take turns within each round (first place rotating), and each
ratio is taken within a round; the table shows medians. The generator is a
minimal keep-alive HTTP/1.1 client on asyncio streams (``--client raw``, the
default): httpx's async client at 64 connections was itself the ceiling
here (60 to 90 requests/s on ``/healthz`` against 2,300 for the raw client,
same server, same minute), so it would have measured the generator, not
docmill. ``--client httpx`` is kept to show that. Markdown goes to stdout,
the raw figures to ``bench/results/api-<date>T<time>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _harness as h

CLIENTS = 64
MAX_REQUESTS = 200_000
PHASES = ["bare", "submit", "status"]
TARGETS = {"submit": 0.5, "status": 0.8}
TEXT = (
    "Invoice {n}. The quick brown fox jumps over the lazy dog while the "
    "accounts team reconciles the ledger for quarter three; totals follow. "
) * 3


# -- the load generator (runs in its own process) ----------------------------


class Load:
    """One phase of requests, shared by the clients of the generator."""

    def __init__(self, phase: str, ids: list[str], seconds: float, limit: int):
        self.phase = phase
        self.ids = ids
        self.deadline = time.monotonic() + seconds
        self.remaining = limit
        self.latencies: list[float] = []
        self.errors = 0
        self.counter = random.randrange(1 << 30)

    def next_request(self) -> tuple[str, str, bytes] | None:
        if self.remaining <= 0 or time.monotonic() >= self.deadline:
            return None
        self.remaining -= 1
        if self.phase == "bare":
            return "GET", "/healthz", b""
        if self.phase == "status":
            return "GET", f"/documents/{random.choice(self.ids)}", b""
        self.counter += 1
        body = json.dumps({"content": TEXT.format(n=self.counter)}).encode()
        return "POST", "/documents", body


async def httpx_client(load: Load, url: str) -> None:
    import httpx

    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:

        async def one_client() -> None:
            while request := load.next_request():
                method, path, body = request
                began = time.perf_counter()
                try:
                    response = await client.request(
                        method, path, content=body or None, headers=headers
                    )
                    ok = response.status_code < 300
                except httpx.HTTPError:
                    ok = False
                load.latencies.append(time.perf_counter() - began)
                load.errors += not ok

        await asyncio.gather(*(one_client() for _ in range(CLIENTS)))


async def raw_client(load: Load, url: str) -> None:
    host, port = url.removeprefix("http://").split(":")

    async def one_client() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while request := load.next_request():
                method, path, body = request
                head = f"{method} {path} HTTP/1.1\r\nhost: {host}\r\n"
                if body:
                    head += (
                        "content-type: application/json\r\n"
                        f"content-length: {len(body)}\r\n"
                    )
                began = time.perf_counter()
                writer.write(head.encode() + b"\r\n" + body)
                response_head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in response_head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                load.latencies.append(time.perf_counter() - began)
                load.errors += not response_head.startswith(b"HTTP/1.1 2")
        finally:
            writer.close()

    await asyncio.gather(*(one_client() for _ in range(CLIENTS)))


def generate(args: argparse.Namespace) -> None:
    """The generator process: run one phase, print its figures as JSON."""
    ids = Path(args.ids).read_text().split() if args.ids else []
    load = Load(args.phase, ids, args.seconds, args.max_requests)
    client = raw_client if args.client == "raw" else httpx_client
    cpu_before = os.times()
    began = time.perf_counter()
    asyncio.run(client(load, args.url))
    elapsed = time.perf_counter() - began
    cpu = os.times()
    used = (cpu.user - cpu_before.user) + (cpu.system - cpu_before.system)
    print(
        json.dumps(
            {
                "phase": args.phase,
                "requests": len(load.latencies),
                "errors": load.errors,
                "seconds": elapsed,
                "rps": len(load.latencies) / elapsed,
                "p50_ms": h.percentile(load.latencies, 0.50) * 1000,
                "p99_ms": h.percentile(load.latencies, 0.99) * 1000,
                # Above ~0.9 the generator, not the server, is the ceiling.
                "generator_cpu_share": used / elapsed,
            }
        )
    )


# -- the bench ---------------------------------------------------------------


def run_phase(
    server: h.Server, phase: str, args: argparse.Namespace, ids_file: Path
) -> dict[str, Any]:
    import psutil

    process = psutil.Process(server.pid)
    cpu_before = process.cpu_times()
    command = [
        sys.executable,
        __file__,
        "--generate",
        phase,
        "--url",
        server.url,
        "--seconds",
        str(args.seconds),
        "--max-requests",
        str(MAX_REQUESTS),
        "--client",
        args.client,
        "--ids",
        str(ids_file),
    ]
    out = subprocess.run(
        command, capture_output=True, text=True, timeout=args.seconds + 120
    )
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed:\n{out.stderr}")
    figures: dict[str, Any] = json.loads(out.stdout)
    cpu = process.cpu_times()
    figures["server_cpu_share"] = (
        cpu.user - cpu_before.user + cpu.system - cpu_before.system
    ) / figures["seconds"]
    return figures


def submit_some(server: h.Server, count: int) -> None:
    import httpx

    with httpx.Client(base_url=server.url, timeout=30) as client:
        for n in range(count):
            response = client.post("/documents", json={"content": f"seed {n} " * 20})
            response.raise_for_status()


def save_ids(server: h.Server, path: Path) -> None:
    import httpx

    with httpx.Client(base_url=server.url, timeout=30) as client:
        page = client.get("/documents", params={"limit": 500}).json()
    path.write_text("\n".join(item["id"] for item in page["items"]))


def bench_database(
    name: str, database_url: str | None, args: argparse.Namespace, workdir: Path
) -> list[dict[str, Any]]:
    extra = []
    if database_url:
        h.upgrade_database(database_url, workdir / name)
        extra = ["--database-url", database_url]
    server = h.serve(workdir / name, "--workers", "0", *extra)
    ids_file = workdir / f"{name}-ids.txt"
    rounds = []
    with h.running(server):
        submit_some(server, 200)
        for number in range(args.rounds):
            shift = number % len(PHASES)
            order = PHASES[shift:] + PHASES[:shift]
            outcome = {}
            for phase in order:
                save_ids(server, ids_file)
                outcome[phase] = run_phase(server, phase, args, ids_file)
            rounds.append(outcome)
            print(
                f"{name} round {number + 1}: "
                + ", ".join(f"{p} {outcome[p]['rps']:.0f}/s" for p in PHASES),
                flush=True,
            )
    return rounds


def summarise(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for phase in PHASES:
        runs = [r[phase] for r in rounds]
        summary[phase] = {
            key: h.median([run[key] for run in runs])
            for key in ("rps", "p50_ms", "p99_ms", "generator_cpu_share")
        } | {
            "server_cpu_share": h.median([run["server_cpu_share"] for run in runs]),
            "errors": sum(run["errors"] for run in runs),
        }
        if phase != "bare":
            summary[phase]["ratio"] = h.median(
                [r[phase]["rps"] / r["bare"]["rps"] for r in rounds]
            )
    return summary


def report(raw: dict[str, Any]) -> str:
    lines = [
        f"`docmill serve --workers 0`, {CLIENTS} clients ({raw['client']}), "
        f"{raw['seconds']:g} s per phase, {raw['rounds']} round(s), medians",
        "",
    ]
    rows = []
    for database, summary in raw["summary"].items():
        for phase in PHASES:
            s = summary[phase]
            ratio = ""
            if phase in TARGETS:
                ratio = (
                    f"{s['ratio']:.2f}x (>= {TARGETS[phase]}x: "
                    f"{h.verdict(s['ratio'] >= TARGETS[phase])})"
                )
            rows.append(
                [
                    database,
                    {
                        "bare": "`GET /healthz`",
                        "submit": "`POST /documents` (JSON)",
                        "status": "`GET /documents/{id}`",
                    }[phase],
                    f"{s['rps']:.0f}",
                    f"{s['p50_ms']:.1f}",
                    f"{s['p99_ms']:.1f}",
                    ratio,
                    f"{s['server_cpu_share']:.2f} / {s['generator_cpu_share']:.2f}",
                    s["errors"],
                ]
            )
    lines.append(
        h.markdown_table(
            [
                "database",
                "request",
                "req/s",
                "p50 (ms)",
                "p99 (ms)",
                "vs bare",
                "CPU server / generator",
                "errors",
            ],
            rows,
        )
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--quick", action="store_true", help="3 s phases, 1 round")
    parser.add_argument("--rounds", type=int, help="rounds (3)")
    parser.add_argument("--seconds", type=float, help="length of a phase (10)")
    parser.add_argument(
        "--client",
        choices=["raw", "httpx"],
        default="raw",
        help="load client: a minimal keep-alive HTTP/1.1 client (raw) or httpx",
    )
    parser.add_argument(
        "--databases",
        default="sqlite,postgres",
        help="comma-separated: sqlite, postgres (127.0.0.1:5432, user postgres)",
    )
    parser.add_argument("--working-tree", action="store_true")
    # The generator's own arguments, when this file runs as the load process.
    parser.add_argument("--generate", choices=PHASES, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--ids", help=argparse.SUPPRESS)
    parser.add_argument("--max-requests", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        args.phase = args.generate
        generate(args)
        return

    args.rounds = args.rounds or (1 if args.quick else 3)
    args.seconds = args.seconds or (3.0 if args.quick else 10.0)
    commit = h.use_snapshot(args.working_tree)
    raw: dict[str, Any] = h.header("api", args.quick, commit)
    raw |= {"client": args.client, "seconds": args.seconds, "rounds": args.rounds}
    raw["versions"]["postgresql"] = h.postgres_version()
    raw["runs"] = {}
    workdir = Path(tempfile.mkdtemp(prefix="docmill-bench-api-"))
    try:
        for database in args.databases.split(","):
            if database == "sqlite":
                raw["runs"]["SQLite"] = bench_database("sqlite", None, args, workdir)
            else:
                # A name of this run's own: another run at the same time
                # would otherwise drop the database under this one.
                name = f"docmill_bench_api_{os.getpid()}"
                with h.postgres_database(name) as url:
                    raw["runs"]["PostgreSQL"] = bench_database(
                        "postgres", url, args, workdir
                    )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    raw["summary"] = {name: summarise(runs) for name, runs in raw["runs"].items()}
    path = h.write_results("api", raw)
    print(report(raw))
    print(f"\nraw figures: {path.relative_to(h.REPO)}")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
