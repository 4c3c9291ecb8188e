"""
Faulty extractors for testing docmill's failure handling.

Import this module as an extractor plugin (``DOCMILL_EXTRACTOR_PLUGINS=
'["docmill.testing"]'``) and documents that begin with these magic lines are
read by extractors that misbehave on purpose:

- ``DOCMILL-TEST-SLEEP <seconds>``: sleeps, reporting progress each 0.1 s,
  then returns the rest of the document as text.
- ``DOCMILL-TEST-STALL <seconds>``: sleeps without reporting progress, as a
  parser stuck in one C call does.
- ``DOCMILL-TEST-CRASH``: kills its own process, as a segfaulting parser would.
- ``DOCMILL-TEST-FLAKY <path>``: crashes while ``path`` does not exist, and
  creates it, so it succeeds on the second attempt.
- ``DOCMILL-TEST-HOG``: allocates memory until the child's cap stops it.
- ``DOCMILL-TEST-WAIT <path>``: waits until ``path`` exists, then returns
  the rest of the document as text. A test opens the gate when it is ready,
  rather than racing a fixed sleep.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from docmill.extract.base import ExtractContext, ExtractionResult, Source, read_source
from docmill.extract.registry import register

SLEEP = b"DOCMILL-TEST-SLEEP "
STALL = b"DOCMILL-TEST-STALL "
CRASH = b"DOCMILL-TEST-CRASH"
FLAKY = b"DOCMILL-TEST-FLAKY "
HOG = b"DOCMILL-TEST-HOG"
WAIT = b"DOCMILL-TEST-WAIT "


def _sleep(source: Source, ctx: ExtractContext) -> ExtractionResult:
    first, _, rest = read_source(source).partition(b"\n")
    seconds = float(first[len(SLEEP) :])
    steps = max(1, int(seconds * 10))
    for step in range(steps):
        time.sleep(seconds / steps)
        ctx.progress(step + 1, steps, "steps")
    return ExtractionResult("application/x-docmill-test", rest.decode())


def _wait(source: Source, ctx: ExtractContext) -> ExtractionResult:
    first, _, rest = read_source(source).partition(b"\n")
    gate = Path(first[len(WAIT) :].decode().strip())
    while not gate.exists():
        time.sleep(0.05)
    return ExtractionResult("application/x-docmill-test", rest.decode())


def _stall(source: Source, ctx: ExtractContext) -> ExtractionResult:
    first, _, rest = read_source(source).partition(b"\n")
    time.sleep(float(first[len(STALL) :]))
    return ExtractionResult("application/x-docmill-test", rest.decode())


def _crash(source: Source, ctx: ExtractContext) -> ExtractionResult:
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable")


def _flaky(source: Source, ctx: ExtractContext) -> ExtractionResult:
    marker = Path(read_source(source)[len(FLAKY) :].decode().strip())
    if not marker.exists():
        marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return ExtractionResult("application/x-docmill-test", "recovered")


def _hog(source: Source, ctx: ExtractContext) -> ExtractionResult:
    hoard = []
    while True:
        hoard.append(bytearray(64 * 1024 * 1024))


register("application/x-docmill-test-sleep", _sleep, magic=SLEEP)
register("application/x-docmill-test-stall", _stall, magic=STALL)
register("application/x-docmill-test-crash", _crash, magic=CRASH)
register("application/x-docmill-test-flaky", _flaky, magic=FLAKY)
register("application/x-docmill-test-hog", _hog, magic=HOG)
register("application/x-docmill-test-wait", _wait, magic=WAIT)
