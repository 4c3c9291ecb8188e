"""
Extraction speed, side by side: docmill, the bare library calls, and peers.

Run from the repository root with the dev venv's python:

    python bench/extract.py [--quick] [--passes 3]

Every (tool, format) runs in its own worker process (``bench/_worker.py``),
file by file with a per-file timeout, so a hang or a crash is recorded and
the bench goes on. The tools take turns within each pass, and each ratio is
summed file for file over the files both tools read, per pass; the table
shows the median of the passes. A Markdown table goes to stdout and the raw
figures to ``bench/results/extract-<date>T<time>.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import select
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
WORKER = BENCH / "_worker.py"
PEERS_VENV = BENCH / ".venv-peers"
PEERS = ["markitdown", "kreuzberg"]
PEER_PACKAGES = ["markitdown[all]", "kreuzberg"]
UNSTRUCTURED_PACKAGE = "unstructured[docx,pptx,xlsx,md]"
UNSTRUCTURED_SKIPPED = (
    "unstructured 0.27.35 installs, but partitioning DOCX and Markdown downloads "
    "the spaCy model en_core_web_sm at run time (RuntimeError: Failed to "
    "download spaCy model); PDF needs the [pdf] extra and its layout models. "
    "Try it with --try-unstructured."
)

# Files are grouped by the corpus folder they sit in; generated files join the
# group of their format, so one worker (and one peak RSS) covers both sets.
EXTENSIONS = {
    ".pdf": "pdf",
    ".docx": "docx",
    ".xlsx": "xlsx",
    ".pptx": "pptx",
    ".odt": "odt",
    ".epub": "epub",
    ".eml": "eml",
    ".rtf": "rtf",
    ".html": "html",
    ".htm": "html",
    ".txt": "txt",
    ".srt": "txt",
    ".csv": "csv",
    ".md": "md",
    ".json": "json",
    ".xml": "xml",
}
FLOOR_TARGETS = {"pdf": 1.15} | dict.fromkeys(
    ("txt", "csv", "md", "html", "json", "xml"), 1.5
)
KREUZBERG_TARGETS = dict.fromkeys(("docx", "xlsx", "pptx", "odt", "epub", "eml"), 1.0)
PEER_TARGET = 1.0
WARM_MIN_BYTES = 2048
SLOW_PEER_FACTOR = 10
SLOW_PEER_SECONDS = 5.0
WORKER_START_SECONDS = 120
# Workers share a 2-core box with other people's work: cap each one so a
# decompression bomb cannot take the machine down with it.
WORKER_MEMORY_BYTES = 8 * 1024**3


@dataclass
class Item:
    path: str
    name: str
    format: str
    group: str
    source: str
    facts: list[list[str]]
    size: int

    def job(self) -> dict[str, Any]:
        return {"path": self.path, "format": self.format, "facts": self.facts}


@dataclass
class Outcome:
    """One tool's results for one group in one pass."""

    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    rss_kb: int = 0
    pool: dict[str, Any] | None = None
    warm: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""


# -- inputs ------------------------------------------------------------------


def read_corpus(corpus: Path) -> list[Item]:
    lines = (corpus / "MANIFEST.tsv").read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    items = []
    for line in lines[1:]:
        if not line.strip():
            continue
        record = dict(zip(header, line.split("\t"), strict=True))
        facts = [list(f.partition("=")[::2]) for f in record["expect"].split("; ")]
        path = corpus / record["path"]
        items.append(
            Item(
                path=str(path),
                name=record["path"],
                format=EXTENSIONS.get(path.suffix.lower(), "other"),
                group=record["path"].split("/", 1)[0],
                source="corpus",
                facts=[f for f in facts if f[0] in ("contains", "pages")],
                size=path.stat().st_size,
            )
        )
    return items


def read_generated(profile: str) -> list[Item]:
    sys.path.insert(0, str(BENCH))
    from _generate import generate

    items = []
    for entry in generate(BENCH / "generated", profile):
        path = Path(entry["path"])
        items.append(
            Item(
                path=str(path),
                name=f"generated/{path.name}",
                format=entry["format"],
                group=entry["format"],
                source="generated",
                facts=entry["facts"],
                size=path.stat().st_size,
            )
        )
    return items


def warm_files(items: list[Item]) -> dict[str, Item]:
    """
    One file per format, read once untimed by each worker before timing.

    Tools load readers and models lazily (MarkItDown its converters, docmill
    its language model on the first document with 40 letters or more), so
    the first real document would carry a one-off cost that no long-running
    worker pays per document. The warm-up file is the smallest of its format
    with at least 2 KB, so it is long enough to trigger those loads.
    """
    warm: dict[str, Item] = {}
    fallback: dict[str, Item] = {}
    for item in sorted(items, key=lambda i: i.size):
        if item.group == "hostile" or not item.facts:
            continue
        fallback[item.format] = item
        if item.size >= WARM_MIN_BYTES:
            warm.setdefault(item.format, item)
    return fallback | warm


# -- peers' virtualenv ---------------------------------------------------------


def peers_python(install: bool, unstructured: bool) -> tuple[Path | None, str]:
    """The peers' venv python, created and filled with pip on first use."""
    python = PEERS_VENV / "bin" / "python"
    packages = PEER_PACKAGES + ([UNSTRUCTURED_PACKAGE] if unstructured else [])
    modules = ["markitdown", "kreuzberg"] + (["unstructured"] if unstructured else [])
    probe = "import " + ", ".join(modules)
    if python.exists() and _quiet([str(python), "-c", probe]):
        return python, ""
    if not install:
        return None, "peers' venv missing and --no-install given"
    log(f"installing peers into {PEERS_VENV} ...")
    if not python.exists() and not _quiet(
        [sys.executable, "-m", "venv", str(PEERS_VENV)]
    ):
        return None, "python -m venv failed"
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    if not _quiet([*pip, *packages]):
        return None, f"pip install {' '.join(packages)} failed"
    return python, ""


def _quiet(command: list[str]) -> bool:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        log(done.stderr[-2000:])
    return done.returncode == 0


def versions(python: Path, names: list[str]) -> dict[str, str]:
    script = (
        "import json, sys\nfrom importlib import metadata\nout = {}\n"
        "for n in sys.argv[1:]:\n"
        "    try: out[n] = metadata.version(n)\n"
        "    except metadata.PackageNotFoundError: pass\n"
        "print(json.dumps(out))"
    )
    done = subprocess.run(
        [str(python), "-c", script, *names], capture_output=True, text=True
    )
    return json.loads(done.stdout or "{}")


# -- workers -----------------------------------------------------------------


def _no_network_prefix() -> list[str]:
    # A worker in its own empty network namespace cannot reach anything, so a
    # peer that tries to download a model fails visibly instead of quietly
    # fetching it.
    if shutil.which("unshare") and _quiet(["unshare", "-rn", "true"]):
        return ["unshare", "-rn"]
    return []


NO_NETWORK = _no_network_prefix()


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (WORKER_MEMORY_BYTES, WORKER_MEMORY_BYTES))


class Worker:
    """One ``_worker.py`` process for one tool; killed and replaced on a hang."""

    def __init__(self, python: Path, tool: str, stderr: Any) -> None:
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        # Anything a peer caches stays inside its venv, not in ~/.cache.
        env["XDG_CACHE_HOME"] = str(PEERS_VENV / "cache")
        self.process = subprocess.Popen(
            [*NO_NETWORK, str(python), str(WORKER), tool],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            cwd=str(REPO),
            env=env,
            start_new_session=True,
            preexec_fn=_limit_memory,
        )
        self.rss_kb = 0

    def request(self, job: dict[str, Any] | None, timeout: float) -> dict[str, Any]:
        """Send ``job`` (None: just wait for the ready line) and read the reply."""
        assert self.process.stdin and self.process.stdout
        try:
            if job is not None:
                self.process.stdin.write(json.dumps(job) + "\n")
                self.process.stdin.flush()
        except BrokenPipeError:
            return self._died()
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not ready:
            self.kill()
            return {"status": "timeout", "error": f"no answer within {timeout:g} s"}
        line = self.process.stdout.readline()
        if not line:
            return self._died()
        reply: dict[str, Any] = json.loads(line)
        self.rss_kb = max(self.rss_kb, reply.get("rss_kb", 0))
        return reply

    def _died(self) -> dict[str, Any]:
        code = self.process.wait(timeout=10)
        name = signal.Signals(-code).name if code < 0 else f"exit {code}"
        return {"status": "crash", "error": f"worker died: {name}"}

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()


def run_group(
    python: Path,
    tool: str,
    items: list[Item],
    warm: list[Item],
    timeout: float,
    skip: dict[str, str],
    stderr: Any,
) -> Outcome:
    """One tool over one group: a fresh worker, warmed up, then file by file."""
    outcome = Outcome()
    worker: Worker | None = None

    def start() -> Worker | None:
        candidate = Worker(python, tool, stderr)
        hello = candidate.request(None, WORKER_START_SECONDS)
        if hello.get("status") != "ready":
            outcome.note = f"{hello.get('status')}: {hello.get('error')}"
            candidate.kill()
            return None
        for item in warm:
            reply = candidate.request(item.job(), timeout)
            outcome.warm.append({"name": item.name} | reply)
            if reply["status"] in ("timeout", "crash"):
                candidate.kill()
                candidate = Worker(python, tool, stderr)
                candidate.request(None, WORKER_START_SECONDS)
        return candidate

    for item in items:
        if item.path in skip:
            # It hung or crashed in an earlier pass; it would only do so again.
            outcome.files[item.path] = {"status": skip[item.path], "error": "skipped"}
            continue
        if worker is None:
            worker = start()
            if worker is None:
                outcome.files[item.path] = {"status": "broken", "error": outcome.note}
                continue
        reply = worker.request(item.job(), timeout)
        outcome.files[item.path] = reply
        outcome.rss_kb = max(outcome.rss_kb, worker.rss_kb)
        if reply["status"] in ("timeout", "crash"):
            worker.kill()
            worker = None
    if worker is not None:
        worker.close()
    return outcome


def run_pool(
    python: Path,
    items: list[Item],
    warm: list[Item],
    timeout: float,
    stderr: Any,
) -> dict[str, Any]:
    worker = Worker(python, "docmill", stderr)
    try:
        hello = worker.request(None, WORKER_START_SECONDS)
        if hello.get("status") != "ready":
            return {"status": "broken", "error": hello.get("error")}
        job = {
            "pool": [[item.path, item.format] for item in items],
            "warm": [[item.path, item.format] for item in warm],
            "processes": os.cpu_count() or 2,
        }
        return worker.request(job, timeout)
    finally:
        worker.close()


# -- the whole run ---------------------------------------------------------------


def run_bench(args: argparse.Namespace) -> dict[str, Any]:
    corpus = (REPO / args.corpus).resolve()
    items = read_corpus(corpus) + read_generated("quick" if args.quick else "full")
    # Warm-up files come from the whole set: with --formats, the long text
    # file that loads the language model would otherwise be filtered out, and
    # the first document with enough letters would pay that one-off load.
    warm = warm_files(items)
    if args.formats:
        items = [i for i in items if i.group in args.formats]
    groups: dict[str, list[Item]] = {}
    for item in items:
        groups.setdefault(item.group, []).append(item)

    dev_python = Path(sys.executable)
    pythons = {"docmill": dev_python, "floor": dev_python}
    skipped = {}
    peers = [p for p in PEERS if p in args.tools]
    if args.try_unstructured:
        peers.append("unstructured")
    else:
        skipped["unstructured"] = UNSTRUCTURED_SKIPPED
    if peers:
        python, why = peers_python(not args.no_install, args.try_unstructured)
        for peer in peers:
            if python is None:
                skipped[peer] = why
            else:
                pythons[peer] = python
    tools = [t for t in ["docmill", "floor", *peers] if t in pythons]

    stderr_path = BENCH / "results" / "worker-stderr.log"
    stderr_path.parent.mkdir(parents=True, exist_ok=True)
    passes: list[dict[str, dict[str, Outcome]]] = []
    skip: dict[str, dict[str, str]] = {tool: {} for tool in tools}
    timed_once: set[str] = set()
    with stderr_path.open("w") as stderr:
        for number in range(args.passes):
            results: dict[str, dict[str, Outcome]] = {t: {} for t in tools}
            for index, (group, members) in enumerate(groups.items()):
                # Rotate who goes first, so no tool always meets a cold cache.
                shift = (number + index) % len(tools)
                for tool in tools[shift:] + tools[:shift]:
                    formats = {item.format for item in members}
                    warm_items = [warm[f] for f in sorted(formats) if f in warm]
                    if args.warm_group:
                        # Every file once more, before its timed read: what a
                        # worker that has met such files before pays. Files
                        # that hung or crashed in an earlier pass are left out.
                        warm_items += [
                            item for item in members if item.path not in skip[tool]
                        ]
                    # A long text file too: the language model loads on the
                    # first document with enough letters, whatever its format.
                    # And an HTML file: mail reads HTML bodies with the HTML
                    # reader, imported on first use (40 ms once per worker,
                    # which the one message with an HTML body paid in every
                    # pass, five times the time of all six messages).
                    for extra in ("txt", "html"):
                        if extra in warm and warm[extra] not in warm_items:
                            warm_items.append(warm[extra])
                    if number and _timed_once(args, passes[0], tool, group):
                        results[tool][group] = passes[0][tool][group]
                        timed_once.add(f"{tool}/{group}")
                        continue
                    started = time.monotonic()
                    outcome = run_group(
                        pythons[tool],
                        tool,
                        members,
                        warm_items,
                        args.timeout,
                        skip[tool],
                        stderr,
                    )
                    if tool == "docmill" and not args.no_pool:
                        outcome.pool = {}
                        for source in ("corpus", "generated"):
                            readable = [
                                item
                                for item in members
                                if item.source == source
                                and outcome.files[item.path]["status"] == "ok"
                            ]
                            if readable:
                                outcome.pool[source] = run_pool(
                                    dev_python,
                                    readable,
                                    warm_items,
                                    args.timeout * len(readable),
                                    stderr,
                                )
                    for path, reply in outcome.files.items():
                        if reply["status"] in ("timeout", "crash"):
                            skip[tool][path] = reply["status"]
                    results[tool][group] = outcome
                    log(
                        f"pass {number + 1}/{args.passes} {group:8} {tool:12} "
                        f"{time.monotonic() - started:6.1f} s"
                    )
            passes.append(results)

    dev_versions = versions(
        dev_python,
        ["docmill", "pypdfium2", "python-docx", "openpyxl", "python-pptx", "lxml"],
    )
    peer_versions = (
        versions(pythons[peers[0]], ["markitdown", "kreuzberg", "unstructured"])
        if peers and peers[0] in pythons
        else {}
    )
    return {
        "date": datetime.date.today().isoformat(),
        "machine": {
            "cores": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "versions": dev_versions | peer_versions,
        "args": vars(args),
        "tools": tools,
        "skipped": skipped,
        "timed_once": sorted(timed_once),
        "items": [vars(item) for item in items],
        "passes": [
            {
                tool: {group: vars(outcome) for group, outcome in per_group.items()}
                for tool, per_group in results.items()
            }
            for results in passes
        ],
    }


def _timed_once(
    args: argparse.Namespace,
    first: dict[str, dict[str, Outcome]],
    tool: str,
    group: str,
) -> bool:
    """
    Whether a peer's first pass over ``group`` stands for every pass.

    A peer ten times slower than docmill on a group decides its ratio by an
    order of magnitude; timing it again would triple the bench's run time
    (MarkItDown's PDF path alone takes minutes) without changing a verdict.
    """
    if args.all_passes or tool in ("docmill", "floor"):
        return False
    theirs = _ok_seconds(first[tool][group])
    ours = _ok_seconds(first["docmill"][group])
    return theirs > SLOW_PEER_SECONDS and theirs > SLOW_PEER_FACTOR * ours


def _ok_seconds(outcome: Outcome) -> float:
    return sum(r["seconds"] for r in outcome.files.values() if r["status"] == "ok")


# -- summary -------------------------------------------------------------------


def summarise(raw: dict[str, Any]) -> dict[str, Any]:
    items = [Item(**entry) for entry in raw["items"]]
    tools = raw["tools"]
    rows = []
    ratios = []
    row_keys = []
    for item in items:
        key = (item.source, item.group)
        if key not in row_keys:
            row_keys.append(key)
    for source, group in row_keys:
        members = [i for i in items if i.source == source and i.group == group]
        per_tool = {}
        for tool in tools:
            per_tool[tool] = _tool_row(raw, tool, group, members)
            once = f"{tool}/{group}" in raw.get("timed_once", [])
            rows.append(
                {"source": source, "group": group, "tool": tool}
                | {"mark": "¹" if once else ""}
                | per_tool[tool]
            )
        for other in tools:
            if other == "docmill":
                continue
            ratio = _ratio(raw, group, members, "docmill", other)
            ratio.update({"source": source, "group": group, "versus": other})
            ratio["target"] = _target(group, other)
            if ratio["target"] is not None and ratio["ratio"] is not None:
                ratio["verdict"] = (
                    "pass" if ratio["ratio"] <= ratio["target"] else "miss"
                )
            ratios.append(ratio)
    return {"rows": rows, "ratios": ratios}


def _tool_row(
    raw: dict[str, Any], tool: str, group: str, members: list[Item]
) -> dict[str, Any]:
    totals = []
    pool_rates = []
    rss = 0
    first: dict[str, dict[str, Any]] = {}
    for number, results in enumerate(raw["passes"]):
        outcome = results[tool][group]
        rss = max(rss, outcome["rss_kb"])
        replies = {i.path: outcome["files"][i.path] for i in members}
        if number == 0:
            first = replies
        totals.append(
            sum(r["seconds"] for r in replies.values() if r["status"] == "ok")
        )
        pool = (outcome.get("pool") or {}).get(members[0].source)
        if pool and pool.get("status") == "ok" and pool["seconds"] > 0:
            pool_rates.append(pool["files"] / pool["seconds"])
    statuses = [first[i.path]["status"] for i in members]
    ok = [i for i in members if first[i.path]["status"] == "ok"]
    seconds = statistics.median(totals) if totals else 0.0
    judged = [
        i for i in members if i.facts and first[i.path]["status"] != "unsupported"
    ]
    passed = [
        i
        for i in judged
        if first[i.path]["status"] == "ok" and not first[i.path].get("missed")
    ]
    pages = (
        sum(first[i.path].get("pages") or _fact_pages(i) or 0 for i in ok)
        if any(i.format == "pdf" for i in members)
        else None
    )
    return {
        "files": len(members),
        "ok": len(ok),
        "errors": statuses.count("error"),
        "timeouts": statuses.count("timeout"),
        "crashes": statuses.count("crash") + statuses.count("broken"),
        "unsupported": statuses.count("unsupported"),
        "seconds": seconds,
        "files_per_s": len(ok) / seconds if seconds else None,
        "pages_per_s": pages / seconds if pages and seconds else None,
        "mb_per_s": sum(i.size for i in ok) / 1e6 / seconds if seconds else None,
        "facts_passed": len(passed),
        "facts_judged": len(judged),
        "failures": {
            i.name: first[i.path].get("error") or first[i.path].get("missed")
            for i in judged
            if i not in passed
        },
        "peak_rss_mb": round(rss / 1024, 1) if rss else None,
        "pool_files_per_s": statistics.median(pool_rates) if pool_rates else None,
    }


def _fact_pages(item: Item) -> int | None:
    for key, value in item.facts:
        if key == "pages":
            return int(value)
    return None


def _ratio(
    raw: dict[str, Any], group: str, members: list[Item], tool: str, other: str
) -> dict[str, Any]:
    per_pass = []
    common = 0
    for results in raw["passes"]:
        mine = results[tool][group]["files"]
        theirs = results[other][group]["files"]
        both = [
            i.path
            for i in members
            if mine[i.path]["status"] == "ok" and theirs[i.path]["status"] == "ok"
        ]
        common = len(both)
        denominator = sum(theirs[p]["seconds"] for p in both)
        if both and denominator > 0:
            per_pass.append(sum(mine[p]["seconds"] for p in both) / denominator)
    return {
        "ratio": statistics.median(per_pass) if per_pass else None,
        "passes": per_pass,
        "common_files": common,
    }


def _target(group: str, other: str) -> float | None:
    if group == "hostile":
        return None
    if other == "floor":
        return FLOOR_TARGETS.get(group)
    if other == "kreuzberg" and group in KREUZBERG_TARGETS:
        return KREUZBERG_TARGETS[group]
    return PEER_TARGET


def render(raw: dict[str, Any], summary: dict[str, Any]) -> str:
    v = raw["versions"]
    lines = [
        f"Extraction bench, {raw['date']}: {raw['machine']['cores']} cores, "
        f"Python {raw['machine']['python']}, {len(raw['passes'])} passes "
        f"(medians), {'quick' if raw['args']['quick'] else 'full'} generated set"
        + (
            "; every file read once untimed before its timed read (--warm-group)."
            if raw["args"].get("warm_group")
            else "; each file's first read in a fresh worker."
        ),
        "",
        "Versions: " + ", ".join(f"{k} {v[k]}" for k in sorted(v)),
        "",
        "### Throughput (single process; docmill x2: all cores)",
        "",
        "| set | format | tool | files | ok/err/t-o | files/s | pages/s | MB/s "
        "| facts ok | peak RSS MB | docmill x2 files/s |",
        "|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in summary["rows"]:
        status = f"{row['ok']}/{row['errors'] + row['crashes']}/{row['timeouts']}"
        if row["unsupported"] == row["files"]:
            status = "unsupported"
        lines.append(
            f"| {row['source']} | {row['group']} | {row['tool']}{row['mark']} "
            f"| {row['files']} "
            f"| {status} | {_num(row['files_per_s'])} | {_num(row['pages_per_s'])} "
            f"| {_num(row['mb_per_s'], 2)} "
            f"| {row['facts_passed']}/{row['facts_judged']} "
            f"| {_num(row['peak_rss_mb'])} | {_num(row['pool_files_per_s'])} |"
        )
    lines += [
        "",
        "### docmill time / other tool's time (same files, median of passes)",
        "",
        "| set | format | versus | files | ratio | target | verdict |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for ratio in summary["ratios"]:
        target = ratio["target"]
        lines.append(
            f"| {ratio['source']} | {ratio['group']} | {ratio['versus']} "
            f"| {ratio['common_files']} | {_num(ratio['ratio'], 2)} "
            f"| {'≤ ' + format(target, '.2f') if target else ''} "
            f"| {ratio.get('verdict', '')} |"
        )
    if raw.get("timed_once"):
        lines += [
            "",
            "¹ timed in the first pass only: more than "
            f"{SLOW_PEER_FACTOR}x docmill's time there (see --all-passes).",
        ]
    if raw["skipped"]:
        lines += [
            "",
            "Skipped: "
            + "; ".join(f"{tool}: {why}" for tool, why in raw["skipped"].items()),
        ]
    return "\n".join(lines)


def _num(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    if digits == 1 and value >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small generated set")
    parser.add_argument("--passes", type=int, default=3, help="timed passes")
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="per-file seconds (default 60, quick 30)",
    )
    parser.add_argument(
        "--corpus",
        default="../shared/corpus",
        help="corpus folder, relative to the repository root",
    )
    parser.add_argument(
        "--tools",
        nargs="+",
        default=["docmill", "floor", *PEERS],
        help="tools to run (docmill and floor always run)",
    )
    parser.add_argument("--formats", nargs="+", help="only these format groups")
    parser.add_argument(
        "--no-install",
        action="store_true",
        help="do not create or fill the peers' venv",
    )
    parser.add_argument(
        "--no-pool", action="store_true", help="skip the all-cores docmill run"
    )
    parser.add_argument(
        "--all-passes",
        action="store_true",
        help="time peers 10x slower than docmill in every pass",
    )
    parser.add_argument(
        "--try-unstructured",
        action="store_true",
        help="install and run Unstructured too",
    )
    parser.add_argument(
        "--summarise", metavar="JSON", help="re-render the tables of an earlier run"
    )
    parser.add_argument(
        "--working-tree",
        action="store_true",
        help="measure src/ as it is, not a snapshot of the last commit",
    )
    parser.add_argument(
        "--warm-group",
        action="store_true",
        help="read every file of a group once, untimed, before timing it "
        "(each tool alike): a long-running worker's steady state, not the "
        "default first read of each file in a fresh worker",
    )
    args = parser.parse_args()
    if args.summarise:
        raw = json.loads(Path(args.summarise).read_text("utf-8"))
        print(render(raw, summarise(raw)))
        return
    if args.timeout is None:
        args.timeout = 30.0 if args.quick else 60.0

    sys.path.insert(0, str(BENCH))
    import _harness

    # Workers import docmill from the snapshot: an edit made while the bench
    # runs must not mix two versions into one measurement.
    commit = _harness.use_snapshot(args.working_tree)
    raw = run_bench(args) | {"commit": commit}
    summary = summarise(raw)
    stamp = datetime.datetime.now().strftime("%Y-%m-%dT%H%M%S")
    (BENCH / "results").mkdir(exist_ok=True)
    out = BENCH / "results" / f"extract-{stamp}.json"
    out.write_text(json.dumps(raw | {"summary": summary}, indent=1), "utf-8")
    print(render(raw, summary))
    log(f"raw figures: {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
