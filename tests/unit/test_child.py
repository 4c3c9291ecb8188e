"""The killable extraction child: timeouts, crashes and memory caps stay contained."""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from docmill.exceptions import ExtractionTimeout, LimitExceeded, WorkerCrash
from docmill.extract.base import Limits
from docmill.extract.child import (
    _INBOX_KEEP_BYTES,
    _LENGTH,
    _READ_SIZE,
    ExtractionChild,
    _Inbox,
    extract_in_process,
)
from docmill.local import _readable

pytestmark = pytest.mark.anyio


@pytest.fixture
def child() -> ExtractionChild:
    child = ExtractionChild(Limits(), memory_mb=512, plugins=["docmill.testing"])
    yield child
    child.close()


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


async def test_slow_extraction_times_out_and_child_is_replaced(
    child: ExtractionChild, tmp_path: Path
) -> None:
    slow = write(tmp_path, "slow", b"DOCMILL-TEST-SLEEP 30\nnever")
    quick = write(tmp_path, "quick", b"DOCMILL-TEST-SLEEP 0\nafter")

    with pytest.raises(ExtractionTimeout):
        await child.extract(slow, None, timeout_seconds=0.5)
    payload = await child.extract(quick, None, timeout_seconds=10)

    assert payload["text"] == "after"


async def test_documents_sent_ahead_are_answered_in_order(
    child: ExtractionChild, tmp_path: Path
) -> None:
    first = write(tmp_path, "first", b"DOCMILL-TEST-SLEEP 0.2\nfirst")
    second = write(tmp_path, "second", b"DOCMILL-TEST-SLEEP 0\nsecond")
    loop = asyncio.get_running_loop()

    await child.send(first, None)
    await child.send(second, None)
    texts = [(await child.receive(10, loop.time()))["text"] for _ in range(2)]

    assert (texts, child.unanswered) == (["first", "second"], 0)


async def test_an_answer_with_another_documents_tag_is_refused(
    child: ExtractionChild, tmp_path: Path
) -> None:
    """Each answer carries its request's tag; a caller expecting another
    gets AnswerMismatch, and the child (holding the rest) is killed."""
    from docmill.extract.child import AnswerMismatch

    first = write(tmp_path, "first", b"first")
    second = write(tmp_path, "second", b"second")
    loop = asyncio.get_running_loop()

    await child.send(first, None, tag="a")
    await child.send(second, None, tag="b")
    with pytest.raises(AnswerMismatch, match="'a' where 'b'"):
        await child.receive(10, loop.time(), tag="b")
    unanswered = child.unanswered
    await child.send(second, None, tag="b")
    payload = await child.receive(10, loop.time(), tag="b")

    assert (unanswered, payload["text"]) == (0, "second")


def _zip_document() -> bytes:
    from tests.unit.extract.test_docx import build_docx

    return build_docx("<w:p><w:r><w:t>Quarterly figures</w:t></w:r></w:p>")


def _pdf_document() -> bytes:
    from tests.unit.extract.test_pdf import make_pdf

    return make_pdf(["A page of the report"], title="Report")


@pytest.mark.parametrize(
    ("name", "make"),
    [
        pytest.param("report.docx", _zip_document, id="docx"),
        pytest.param("report.pdf", _pdf_document, id="pdf"),
        pytest.param("table.csv", lambda: b"a,b\n1,2\n", id="csv"),
        pytest.param("hello.txt", lambda: "Grüße aus Köln\n".encode(), id="text"),
    ],
)
async def test_document_sent_as_bytes_reads_as_from_its_file(
    child: ExtractionChild, tmp_path: Path, name: str, make: Any
) -> None:
    """A worker hands small originals over in memory; nothing may change."""
    data = make()
    path = write(tmp_path, name, data)

    from_file = await child.extract(path, name, timeout_seconds=10)
    from_memory = await child.extract(data, name, timeout_seconds=10)

    for payload in (from_file, from_memory):
        del payload["processing_ms"]
    assert from_memory == from_file


async def test_nameless_document_is_judged_by_its_bytes_alone(
    child: ExtractionChild, tmp_path: Path
) -> None:
    """
    A nameless upload's scratch copy has a name of its own, which says
    nothing about the document: it must not count as its name.
    """
    prose = b"Plain prose, not a list.\n"
    path = write(tmp_path, "scratch.md", prose)

    from_file = await child.extract(path, None, timeout_seconds=10)
    from_memory = await child.extract(prose, None, timeout_seconds=10)

    assert (from_file["mime_type"], from_memory["mime_type"]) == (
        "text/plain",
        "text/plain",
    )


async def test_timeout_takes_the_document_queued_behind_with_the_child(
    child: ExtractionChild, tmp_path: Path
) -> None:
    slow = write(tmp_path, "slow", b"DOCMILL-TEST-SLEEP 30\nnever")
    queued = write(tmp_path, "queued", b"DOCMILL-TEST-SLEEP 0\nqueued")
    loop = asyncio.get_running_loop()
    await child.send(slow, None)
    await child.send(queued, None)

    with pytest.raises(ExtractionTimeout):
        await child.receive(0.5, loop.time())
    unanswered = child.unanswered
    payload = await child.extract(queued, None, timeout_seconds=10)

    assert (unanswered, payload["text"]) == (0, "queued")


async def test_child_killed_while_idle_is_replaced_without_blaming_the_next(
    child: ExtractionChild, tmp_path: Path
) -> None:
    """The out-of-memory killer may pick an idle child; no document was in it."""
    first = write(tmp_path, "first", b"DOCMILL-TEST-SLEEP 0\nfirst")
    innocent = write(tmp_path, "innocent", b"DOCMILL-TEST-SLEEP 0\ninnocent")
    await child.extract(first, None, timeout_seconds=10)
    idle = child._process
    os.kill(idle.pid, signal.SIGKILL)
    await asyncio.to_thread(idle.join, 5)

    payload = await child.extract(innocent, None, timeout_seconds=10)

    assert payload["text"] == "innocent"
    assert child._process is not idle


async def test_crashing_extraction_is_reported_as_worker_crash(
    child: ExtractionChild, tmp_path: Path
) -> None:
    crash = write(tmp_path, "crash", b"DOCMILL-TEST-CRASH")

    with pytest.raises(WorkerCrash, match="SIGKILL"):
        await child.extract(crash, None, timeout_seconds=10)


async def test_memory_hog_stops_at_the_cap(
    child: ExtractionChild, tmp_path: Path
) -> None:
    hog = write(tmp_path, "hog", b"DOCMILL-TEST-HOG")

    with pytest.raises(LimitExceeded):
        await child.extract(hog, None, timeout_seconds=30)


async def test_a_child_that_ran_out_of_memory_is_replaced(
    child: ExtractionChild, tmp_path: Path
) -> None:
    """What the failed document left in the heap must not count against the next."""
    hog = write(tmp_path, "hog", b"DOCMILL-TEST-HOG")
    after = write(tmp_path, "after", b"DOCMILL-TEST-SLEEP 0\nafter")
    await child.extract(after, None, timeout_seconds=10)
    first = child._process

    with pytest.raises(LimitExceeded):
        await child.extract(hog, None, timeout_seconds=30)
    payload = await child.extract(after, None, timeout_seconds=10)

    assert (payload["text"], child._process is first) == ("after", False)


async def test_a_memory_failure_takes_the_document_queued_behind_along(
    child: ExtractionChild, tmp_path: Path
) -> None:
    hog = write(tmp_path, "hog", b"DOCMILL-TEST-HOG")
    queued = write(tmp_path, "queued", b"DOCMILL-TEST-SLEEP 0\nqueued")
    loop = asyncio.get_running_loop()
    await child.send(hog, None)
    await child.send(queued, None)

    with pytest.raises(LimitExceeded):
        await child.receive(30, loop.time())
    unanswered = child.unanswered
    payload = await child.extract(queued, None, timeout_seconds=10)

    assert (unanswered, payload["text"]) == (0, "queued")


async def test_progress_reaches_the_parent(
    child: ExtractionChild, tmp_path: Path
) -> None:
    slow = write(tmp_path, "slow", b"DOCMILL-TEST-SLEEP 0.6\ndone")
    seen: list[dict[str, object]] = []

    await child.extract(slow, None, timeout_seconds=10, on_progress=seen.append)

    assert seen[-1] == {"done": 6, "total": 6, "unit": "steps"}


def test_large_result_arrives_whole_under_uvloop(tmp_path: Path) -> None:
    """uvloop leaves a watched pipe non-blocking; a big result must still arrive."""
    uvloop = pytest.importorskip("uvloop")
    big = write(tmp_path, "big.txt", ("word " * 200_000).encode())
    child = ExtractionChild(Limits(), memory_mb=1024)

    async def extract_twice() -> list[int]:
        try:
            return [
                (await child.extract(big, None, timeout_seconds=60))["word_count"]
                for _ in range(2)
            ]
        finally:
            child.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        counts = runner.run(extract_twice())

    assert counts == [200_000, 200_000]


def extract_blocking(child: ExtractionChild, path: Path, timeout: float) -> Any:
    """begin() then collect() as ``docmill extract`` drives them."""
    child.begin(path, None, timeout)
    while True:
        _readable([child], max(child.deadline - time.monotonic(), 0))
        payload = child.collect()
        if payload is not None:
            return payload


@pytest.fixture
def descriptors_past_1023() -> Iterator[None]:
    """Hold files open until this process's next descriptor is past 1023."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        if hard != resource.RLIM_INFINITY and hard < 1200:
            pytest.skip(f"the open-files limit ({hard}) stops short of 1024")
        resource.setrlimit(resource.RLIMIT_NOFILE, (1200, hard))
    held: list[int] = []
    try:
        while not held or held[-1] < 1030:
            held.append(os.open(os.devnull, os.O_RDONLY))
        yield
    finally:
        for fd in held:
            os.close(fd)
        if soft < 1200:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_blocking_use_works_with_descriptors_past_1023(
    descriptors_past_1023: None, tmp_path: Path
) -> None:
    # select() refuses such descriptors; a test run that had opened many
    # files, or a program embedding docmill, got "filedescriptor out of
    # range in select()" from docmill extract and from reaping a child.
    stall = write(tmp_path, "stall", b"DOCMILL-TEST-STALL 30\nnever")
    quick = write(tmp_path, "quick", b"DOCMILL-TEST-SLEEP 0\nafter")
    # Forked as docmill extract forks them: that child is reaped by its own
    # code, which waited on the child's pidfd with select().
    child = ExtractionChild(
        Limits(), memory_mb=512, plugins=["docmill.testing"], start_method="fork"
    )
    try:
        child.begin(quick, None, 10)
        assert child.fileno() > 1023
        while (payload := child.collect()) is None:
            _readable([child], 10)
        assert payload["text"] == "after"
        with pytest.raises(ExtractionTimeout):
            extract_blocking(child, stall, 0.5)
        assert extract_blocking(child, quick, 10)["text"] == "after"
    finally:
        child.close()


def test_blocking_use_times_out_and_the_child_is_replaced(
    child: ExtractionChild, tmp_path: Path
) -> None:
    stall = write(tmp_path, "stall", b"DOCMILL-TEST-STALL 30\nnever")
    quick = write(tmp_path, "quick", b"DOCMILL-TEST-SLEEP 0\nafter")

    with pytest.raises(ExtractionTimeout, match=r"within 0\.5 seconds"):
        extract_blocking(child, stall, 0.5)
    payload = extract_blocking(child, quick, 10)

    assert payload["text"] == "after"


def test_blocking_use_skips_progress_and_reports_a_crash(
    child: ExtractionChild, tmp_path: Path
) -> None:
    slow = write(tmp_path, "slow", b"DOCMILL-TEST-SLEEP 0.3\ndone")
    crash = write(tmp_path, "crash", b"DOCMILL-TEST-CRASH")

    assert extract_blocking(child, slow, 10)["text"] == "done"
    with pytest.raises(WorkerCrash, match="SIGKILL"):
        extract_blocking(child, crash, 10)


def test_blocking_use_stops_a_memory_hog_at_the_cap(
    child: ExtractionChild, tmp_path: Path
) -> None:
    hog = write(tmp_path, "hog", b"DOCMILL-TEST-HOG")

    with pytest.raises(LimitExceeded):
        extract_blocking(child, hog, 30)


def test_blocking_use_replaces_a_child_that_ran_out_of_memory(
    child: ExtractionChild, tmp_path: Path
) -> None:
    hog = write(tmp_path, "hog", b"DOCMILL-TEST-HOG")
    after = write(tmp_path, "after", b"DOCMILL-TEST-SLEEP 0\nafter")
    extract_blocking(child, after, 10)
    first = child._process

    with pytest.raises(LimitExceeded):
        extract_blocking(child, hog, 30)
    payload = extract_blocking(child, after, 10)

    assert (payload["text"], child._process is first) == ("after", False)


def test_blocking_use_receives_a_large_result_whole(tmp_path: Path) -> None:
    big = write(tmp_path, "big.txt", ("word " * 200_000).encode())
    child = ExtractionChild(Limits(), memory_mb=1024, start_method="fork")
    try:
        counts = [extract_blocking(child, big, 60)["word_count"] for _ in range(2)]
    finally:
        child.close()

    assert counts == [200_000, 200_000]


def _docx_bytes(body: str) -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/'
            'package/2006/content-types"><Override PartName="/word/document.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.'
            'wordprocessingml.document.main+xml"/></Types>',
        )
        archive.writestr(
            "word/document.xml",
            '<w:document xmlns:w="http://schemas.openxmlformats.org/'
            'wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>'
            + body
            + "</w:t></w:r></w:p></w:body></w:document>",
        )
    return buffer.getvalue()


def _damaged(data: bytes, member: bytes, how: str) -> bytes:
    """``data`` with ``member``'s deflated bytes or its method field spoiled."""
    local = data.rindex(b"PK\x03\x04", 0, data.index(member))
    spoiled = bytearray(data)
    if how == "bytes":
        start = local + 30 + len(member) + 40
        for offset in range(start, start + 24):
            spoiled[offset] ^= 0x5A
    else:
        # Method 77 is no compression zipfile knows, in both headers.
        central = data.index(member, data.index(b"PK\x01\x02")) - 46
        for header in (local, central + 2):
            spoiled[header + 8 : header + 10] = (77).to_bytes(2, "little")
    return bytes(spoiled)


@pytest.mark.parametrize("how", ["bytes", "method"])
def test_damaged_zip_member_is_corrupt_not_a_reader_bug(
    tmp_path: Path, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import zipfile

    from docmill.exceptions import CorruptDocument
    from docmill.extract import pipeline
    from docmill.extract.child import extract_in_process

    words = " ".join(f"word{n}" for n in range(3_000))
    data = _damaged(_docx_bytes(words), b"word/document.xml", how)
    path = write(tmp_path, "damaged.docx", data)

    # A reader that reaches the damaged member where no extractor guards it
    # (seen: headers, hyperlinks, EPUB chapters); zipfile raises its own.
    def read_every_member(path: Path, *args: object) -> object:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                archive.read(member)
        raise AssertionError("the damage was not met")

    monkeypatch.setattr(pipeline, "extract_path", read_every_member)

    with pytest.raises(CorruptDocument):
        extract_in_process(path, "damaged.docx", Limits())


def test_nesting_deeper_than_the_stack_is_a_limit(tmp_path: Path) -> None:
    from docmill.extract.child import extract_in_process

    path = write(tmp_path, "deep.html", b"<html><body>" + b"<div>" * 5_000 + b"x")

    with pytest.raises(LimitExceeded):
        extract_in_process(path, "deep.html", Limits())


def test_extract_runs_with_descriptors_past_1023(
    descriptors_past_1023: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from docmill.extract_settings import ExtractSettings
    from docmill.local import run_extract

    for number in range(3):
        write(tmp_path, f"note-{number}.txt", f"note number {number}".encode())

    failures = run_extract([tmp_path], ExtractSettings(), output_format="jsonl", jobs=2)

    assert failures == 0
    out = capsys.readouterr().out
    assert [f"note number {n}" in out for n in range(3)] == [True] * 3


def framed(*messages: Any) -> bytes:
    """Messages as the child writes them: each a length, then its pickle."""
    frames = []
    for message in messages:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        frames.append(_LENGTH.pack(len(data)) + data)
    return b"".join(frames)


def read_through(inbox: _Inbox, stream: bytes, step: int) -> list[Any]:
    """Feed ``stream`` to ``inbox`` ``step`` bytes a read; the messages taken."""
    taken = []
    while stream:
        room = inbox.room()
        count = min(step, len(stream), len(room))
        room[:count] = stream[:count]
        stream = stream[count:]
        inbox.filled(count)
        while inbox.whole():
            with inbox.take() as data:
                taken.append(pickle.loads(data))
    return taken


@pytest.mark.parametrize("step", [1, 7, 8, 9, 4096, _READ_SIZE], ids=str)
def test_inbox_takes_messages_however_the_reads_split_them(step: int) -> None:
    messages = [("progress", {"done": 1}), ("ok", {"text": "é" * 300}), ("x",)]

    taken = read_through(_Inbox(), framed(*messages), step)

    assert taken == messages


def test_inbox_grows_for_a_large_message_and_shrinks_after() -> None:
    inbox = _Inbox()
    large = ("ok", {"text": "x" * (_INBOX_KEEP_BYTES + 1)})
    stream = framed(("progress", {}), large, ("progress", {"done": 2}))

    taken = read_through(inbox, stream, _READ_SIZE)

    assert (taken[1], len(inbox.buffer)) == (large, _READ_SIZE)


def test_inbox_reports_a_closed_socket() -> None:
    with pytest.raises(EOFError):
        _Inbox().filled(0)


def test_a_text_with_a_stray_nul_is_read_without_it() -> None:
    # The sniffer took any NUL for a binary format: unsupported_format.
    data = "Grüße aus Köln.\x00 Bis bald!\n".encode()
    payload = extract_in_process(data, "note.txt", Limits())
    assert (payload["mime_type"], payload["text"]) == (
        "text/plain",
        "Grüße aus Köln. Bis bald!\n",
    )
