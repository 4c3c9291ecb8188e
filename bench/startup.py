"""
Start-up: `docmill extract` on one small file beside `import pypdfium2`.

Run from the repository root with the dev venv's python:

    python bench/startup.py [--quick] [--runs 15]

Issue 7 asks that `docmill extract` of one small file finish in under 2x the
time of ``python -c "import pypdfium2"``: the CLI must not import what the
command does not use. Each run is a fresh process started from this
script, wall time from spawn to exit; the commands take turns so a busy
moment of the machine hits all of them alike, and the table shows medians.
Three docmill runs are measured: a one-page PDF, a small text file and
``docmill --help`` (the import of the CLI alone). A bare ``python -c pass``
and the imports of pydantic-settings and Typer are shown for scale.
``--baseline REF`` measures the docmill runs of another commit too, in the
same rounds, so a change is compared on the same moments of the machine.

docmill's modules are compiled to bytecode before the runs, as installing a
package does: this workplace sets PYTHONDONTWRITEBYTECODE, and without the
compiled files every run would also compile docmill's sources, which no
installed ``docmill`` does (``--no-bytecode`` measures that way anyway).
Markdown goes to stdout, the raw figures to
``bench/results/startup-<date>T<time>.json``.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import _harness as h

TARGET = 2.0


Command = tuple[list[str], dict[str, str] | None]


def commands(python: str) -> dict[str, Command]:
    return {
        "python -c pass": ([python, "-c", "pass"], None),
        'python -c "import pypdfium2"': ([python, "-c", "import pypdfium2"], None),
        # What docmill's own stack costs before it does anything: settings
        # come from pydantic-settings and the CLI is Typer.
        "import pydantic_settings": ([python, "-c", "import pydantic_settings"], None),
        "import typer": ([python, "-c", "import typer"], None),
    }


def docmill_commands(
    python: str, label: str, env: dict[str, str] | None
) -> dict[str, Command]:
    docmill = [python, "-c", "from docmill.cli import main; main()"]
    runs = {
        "docmill --help": [*docmill, "--help"],
        "docmill extract (1-page PDF)": [
            *docmill,
            "extract",
            str(h.CORPUS / "pdf" / "simple1.pdf"),
        ],
        "docmill extract (small text)": [
            *docmill,
            "extract",
            str(h.CORPUS / "txt" / "utf8-bom-english.txt"),
        ],
    }
    return {f"{name}{label}": (command, env) for name, command in runs.items()}


def baseline_source(ref: str) -> tuple[str, Path]:
    """``src/`` of commit ``ref``, unpacked in a temporary directory."""
    commit = subprocess.run(
        ["git", "-C", str(h.REPO), "rev-parse", "--short", ref],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    root = Path(tempfile.mkdtemp(prefix="docmill-bench-baseline-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    archive = subprocess.run(
        ["git", "-C", str(h.REPO), "archive", commit, "src"],
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    return commit, root / "src"


def compile_bytecode(src: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(src / "docmill")],
        check=True,
        capture_output=True,
    )


def wall_time(command: Command) -> float:
    argv, env = command
    started = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, env=env)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--quick", action="store_true", help="7 runs")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--working-tree", action="store_true")
    parser.add_argument(
        "--baseline", metavar="REF", help="also measure this commit's docmill runs"
    )
    parser.add_argument(
        "--no-bytecode",
        action="store_true",
        help="let every run compile docmill's modules (no precompiled files)",
    )
    args = parser.parse_args()
    runs = 7 if args.quick else args.runs
    # The benches' own variables (DOCMILL_BENCH_PORTS) start with DOCMILL_, so
    # `docmill extract` would read its settings through pydantic-settings, as
    # for any DOCMILL_ variable (docmill.extract_settings): 281 ms against 130
    # in one run. No server is started here; they are dropped.
    for name in [n for n in os.environ if n.upper().startswith("DOCMILL_BENCH_")]:
        del os.environ[name]
    commit = h.use_snapshot(args.working_tree)
    load_before = os.getloadavg()
    sources = [
        h.REPO / "src"
        if args.working_tree
        else Path(os.environ["PYTHONPATH"].split(os.pathsep)[0])
    ]
    table = commands(sys.executable) | docmill_commands(sys.executable, "", None)
    baseline = None
    if args.baseline:
        baseline, baseline_src = baseline_source(args.baseline)
        sources.append(baseline_src)
        # In place of this commit's snapshot, before anything else on the path.
        path = [str(baseline_src), *os.environ.get("PYTHONPATH", "").split(os.pathsep)]
        if not args.working_tree:
            del path[1]
        env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, path))}
        table |= docmill_commands(sys.executable, f" @ {baseline}", env)
    if not args.no_bytecode:
        for src in sources:
            compile_bytecode(src)
    for command in table.values():
        wall_time(command)  # warm the page cache and .pyc files
    times: dict[str, list[float]] = {name: [] for name in table}
    for round_index in range(runs):
        names = list(table)
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(wall_time(table[name]))
    medians = {name: h.median(values) for name, values in times.items()}
    floor = medians['python -c "import pypdfium2"']
    rows = []
    for name, value in medians.items():
        ratio = value / floor
        mark = ""
        if name.startswith("docmill extract"):
            mark = f"{h.verdict(ratio < TARGET)} (< {TARGET}x)"
        rows.append([name, f"{value * 1000:.0f}", f"{ratio:.2f}x", mark])
    typer_version = metadata.version("typer")
    compiled = "no precompiled bytecode" if args.no_bytecode else "bytecode compiled"
    load_after = os.getloadavg()
    print(
        f"`startup.py` ({runs} runs each, median wall time, commit {commit}, "
        f"typer {typer_version}, {compiled}; 1-minute load average "
        f"{load_before[0]:.2f} before, {load_after[0]:.2f} after)\n"
    )
    print(h.markdown_table(["command", "ms", "/ import pypdfium2", ""], rows))
    payload = h.header("startup", args.quick, commit) | {
        "runs": runs,
        "baseline": baseline,
        "bytecode": not args.no_bytecode,
        "typer": typer_version,
        "load_average": {"before": load_before, "after": load_after},
        "seconds": times,
        "medians": medians,
    }
    print(f"\nraw figures: {h.write_results('startup', payload)}", file=sys.stderr)


if __name__ == "__main__":
    main()
