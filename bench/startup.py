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
Markdown goes to stdout, the raw figures to
``bench/results/startup-<date>T<time>.json``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import _harness as h

TARGET = 2.0


def commands(python: str) -> dict[str, list[str]]:
    docmill = [python, "-c", "from docmill.cli import main; main()"]
    return {
        "python -c pass": [python, "-c", "pass"],
        'python -c "import pypdfium2"': [python, "-c", "import pypdfium2"],
        # What docmill's own stack costs before it does anything: settings
        # come from pydantic-settings and the CLI is Typer.
        "import pydantic_settings": [python, "-c", "import pydantic_settings"],
        "import typer": [python, "-c", "import typer"],
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


def wall_time(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--quick", action="store_true", help="7 runs")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--working-tree", action="store_true")
    args = parser.parse_args()
    runs = 7 if args.quick else args.runs
    commit = h.use_snapshot(args.working_tree)
    table = commands(sys.executable)
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
    print(f"`startup.py` ({runs} runs each, median wall time, commit {commit})\n")
    print(h.markdown_table(["command", "ms", "/ import pypdfium2", ""], rows))
    payload = h.header("startup", args.quick, commit) | {
        "runs": runs,
        "seconds": times,
        "medians": medians,
    }
    print(f"\nraw figures: {h.write_results('startup', payload)}", file=sys.stderr)


if __name__ == "__main__":
    main()
