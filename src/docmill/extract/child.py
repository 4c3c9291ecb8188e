"""
Extraction in a child process that can be killed.

Parsers for hostile formats hang, recurse and allocate without bound, and
most of them are C code that no Python timeout can interrupt. Each worker slot
therefore owns one long-lived child process and sends it one document at a
time over a socket pair. When a document takes too long, or the child dies,
the slot kills it and starts a fresh one for the next document; the worker
itself, and every other slot, carries on.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import socket
import struct
import sys
import time
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from docmill.exceptions import (
    CorruptDocument,
    ExtractionError,
    ExtractionTimeout,
    LimitExceeded,
    MemoryLimitExceeded,
    WorkerCrash,
    error_class,
)
from docmill.extract.base import ExtractContext, Limits, Source

Payload = dict[str, Any]
ProgressHandler = Callable[[dict[str, Any]], None]

# The child reports progress at most this often, so a 10,000-page PDF does
# not flood the socket with 10,000 messages.
PROGRESS_INTERVAL_SECONDS = 0.25

# Messages between the worker and its child are pickles behind an 8-byte
# length, on a socket pair. The worker reads them on its event loop as the
# bytes arrive: no thread hop per document, and a large result never blocks
# the loop while it trickles in.
_LENGTH = struct.Struct("!Q")
_READ_SIZE = 256 * 1024
# A buffer grown for a large answer is kept up to this size: a new one is
# zero-filled (bytearray), which cost more than the copies it saves.
_INBOX_KEEP_BYTES = 4 * 1024 * 1024
# A result larger than this is unpickled in a thread, so that its strings
# are not built on the event loop while requests wait.
_UNPICKLE_IN_THREAD_BYTES = 1024 * 1024

_forkserver: Any = None
# The pid of the process that starts the fork server, for the server to
# check that it is still there (see ``_server_guard``).
OWNER_VARIABLE = "DOCMILL_FORKSERVER_OWNER"


def _forkserver_context() -> Any:
    """multiprocessing's fork server context, with the server started."""
    global _forkserver
    if _forkserver is None:
        import multiprocessing
        import multiprocessing.forkserver

        _forkserver = multiprocessing.get_context("forkserver")
        # The fork server imports the extraction pipeline once; each child
        # then starts as a cheap fork of it instead of a fresh interpreter.
        # "__main__" makes the server, not every child, import the program's
        # main module (the `docmill` script and with it the CLI), which would
        # otherwise cost each new child a quarter of a second.
        _forkserver.set_forkserver_preload(
            ["__main__", "docmill.extract.child", "docmill.extract._server_guard"]
        )
        # Only the server reads the variable, so it is set only while it starts.
        os.environ[OWNER_VARIABLE] = str(os.getpid())
        try:
            multiprocessing.forkserver.ensure_running()
        finally:
            os.environ.pop(OWNER_VARIABLE, None)
    return _forkserver


class _ForkedProcess:
    """
    A child made by ``os.fork``, with the part of multiprocessing's Process
    that ExtractionChild uses.

    For a parent that forks before it starts any thread (``docmill
    extract``), where importing multiprocessing would only add to the start.
    The child closes the parent's end of the socket pair: holding it, as a
    child forked by multiprocessing did, it never saw the parent go and
    outlived a killed ``docmill extract``.
    """

    def __init__(
        self, target: Callable[..., None], args: tuple[Any, ...], parent_end: Any
    ) -> None:
        self._target, self._args, self._parent_end = target, args, parent_end
        self.pid = 0
        self.exitcode: int | None = None

    def start(self) -> None:
        # What the child would otherwise write a second time.
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(AttributeError, ValueError, OSError):
                stream.flush()
        pid = os.fork()
        if pid:
            self.pid = pid
            return
        code = 1
        try:
            self._parent_end.close()
            self._target(*self._args)
            code = 0
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            # Never the parent's exit handlers, nor its buffers, in the child.
            os._exit(code)

    def is_alive(self) -> bool:
        return self.pid != 0 and self._poll(os.WNOHANG) is None

    def join(self, timeout: float) -> None:
        if self._poll(os.WNOHANG) is not None:
            return
        try:
            # Readable the moment the child has exited: no polling delay.
            pidfd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):  # not Linux 5.3+
            deadline = time.monotonic() + timeout
            while self._poll(os.WNOHANG) is None and time.monotonic() < deadline:
                time.sleep(0.005)
            return
        try:
            # poll, not select: select() refuses descriptors past 1023, which
            # a long-running process with many connections reaches.
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            poller.poll(max(timeout, 0) * 1000)
        finally:
            os.close(pidfd)
        self._poll(os.WNOHANG)

    def kill(self) -> None:
        if self.is_alive():
            os.kill(self.pid, signal.SIGKILL)

    def _poll(self, flags: int) -> int | None:
        if self.exitcode is None:
            pid, status = os.waitpid(self.pid, flags)
            if pid:
                self.exitcode = os.waitstatus_to_exitcode(status)
        return self.exitcode


def to_payload(result: Any, processing_ms: float) -> Payload:
    """The stored and returned shape of a result, counts included."""
    from docmill.extract.pipeline import count_words

    data: Payload = _without_nul(result.to_dict())
    text = data["text"]
    # The bytes count only for the very text they encode: one whose NULs
    # were just dropped, or that was cut or replaced since, is encoded anew.
    known = result.utf8
    utf8 = known[1] if known is not None and known[0] is text else None
    data["word_count"] = count_words(text, utf8)
    data["char_count"] = len(text)
    data["page_count"] = result.page_count
    data["processing_ms"] = round(processing_ms, 3)
    return data


def _without_nul(value: Any) -> Any:
    # NUL is valid in Python text but not in PostgreSQL text or JSON columns;
    # no reader of extracted text needs it.
    if isinstance(value, str):
        return value.replace("\x00", "") if "\x00" in value else value
    if isinstance(value, dict):
        return {key: _without_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    return value


def extract_in_process(
    source: Source,
    name: str | None,
    limits: Limits,
    password: str | None = None,
    on_progress: Callable[[int, int, str], None] | None = None,
    charset: str | None = None,
) -> Payload:
    """
    Extract ``source`` (a path, or the document's bytes) here and now, under
    the original name ``name`` (None: nameless), its text formats read in
    the declared ``charset`` first; raise ExtractionError when it cannot.
    """
    from docmill.extract.pipeline import extract_document

    started = time.perf_counter()
    ctx = ExtractContext(
        limits, on_progress=on_progress, password=password, charset=charset
    )
    try:
        result = extract_document(source, ctx, name)
    except ExtractionError:
        raise
    except MemoryError as exc:
        raise MemoryLimitExceeded("extraction ran out of its memory allowance") from exc
    except RecursionError as exc:
        raise LimitExceeded(
            "the document nests structures deeper than docmill reads"
        ) from exc
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise CorruptDocument(f"a compressed part is damaged: {exc}") from exc
    except NotImplementedError as exc:
        # zipfile's way to say a member uses a method or version it does not
        # know: in a document that is damage (or a hand-made oddity), not a
        # docmill bug.
        if not _raised_in(exc, zipfile.__file__):
            raise ExtractionError(
                f"the reader failed unexpectedly: NotImplementedError: {exc}"
            ) from exc
        raise CorruptDocument(f"a compressed part cannot be read: {exc}") from exc
    except Exception as exc:
        raise ExtractionError(
            f"the reader failed unexpectedly: {type(exc).__name__}: {exc}"
        ) from exc
    return to_payload(result, (time.perf_counter() - started) * 1000)


def _raised_in(exc: BaseException, filename: str) -> bool:
    """Whether the innermost frame of ``exc``'s traceback is in ``filename``."""
    trace = exc.__traceback__
    if trace is None:
        return False
    while trace.tb_next is not None:
        trace = trace.tb_next
    return trace.tb_frame.f_code.co_filename == filename


def _send(channel: socket.socket, message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    channel.sendall(_LENGTH.pack(len(data)) + data)


def _receive_exactly(channel: socket.socket, size: int) -> bytes:
    parts = []
    while size:
        part = channel.recv(min(size, _READ_SIZE))
        if not part:
            raise EOFError
        parts.append(part)
        size -= len(part)
    return b"".join(parts)


class _Inbox:
    """
    What the parent has read from its child's socket and not yet taken.

    The socket is read straight into this buffer (``recv_into``), and each
    message is unpickled where it lies. Reading with ``recv`` instead made a
    new 256 KiB bytes object for each read, shrank it to what arrived and
    appended it to a growing buffer: the event loop's CPU for a document's
    exchange with its child was 0.28 ms for small ones (now 0.23-0.25), for
    a 200 KB answer 0.5-0.7 ms more (0.3-0.5), for 1.6 MB 2 ms (0.65).
    """

    def __init__(self) -> None:
        self.buffer = bytearray(_READ_SIZE)
        # The unread bytes are buffer[start:end].
        self.start = 0
        self.end = 0

    def _message_size(self) -> int | None:
        """The size of the next message, its length included, once known."""
        if self.end - self.start < _LENGTH.size:
            return None
        (size,) = _LENGTH.unpack_from(self.buffer, self.start)
        return int(_LENGTH.size + size)

    def whole(self) -> bool:
        """Whether the next message has arrived whole."""
        size = self._message_size()
        return size is not None and self.end - self.start >= size

    def room(self) -> memoryview:
        """
        Where the next read goes: after the unread bytes, in a buffer large
        enough for the whole of the message they begin.
        """
        need = self._message_size() or _LENGTH.size
        if self.start + need > len(self.buffer) or self.end == len(self.buffer):
            unread = self.buffer[self.start : self.end]
            if need > len(self.buffer):
                self.buffer = bytearray(need)
            self.buffer[: len(unread)] = unread
            self.start, self.end = 0, len(unread)
        return memoryview(self.buffer)[self.end :]

    def filled(self, count: int) -> None:
        """``count`` more bytes were read into ``room()``."""
        if not count:
            raise EOFError
        self.end += count

    def take(self) -> memoryview:
        """
        The next whole message (without its length), to be unpickled and
        released before the next ``room()``.
        """
        size = self._message_size()
        assert size is not None
        body = memoryview(self.buffer)[self.start + _LENGTH.size : self.start + size]
        self.start += size
        if self.start == self.end:
            self.start = self.end = 0
            if len(self.buffer) > _INBOX_KEEP_BYTES:
                # The memory of a large result goes back now, not when the
                # child is replaced.
                self.buffer = bytearray(_READ_SIZE)
        return body


def _child_main(
    channel: socket.socket,
    limits: Limits,
    memory_mb: int,
    plugins: list[str],
    owner: int,
) -> None:
    _die_with(owner)
    # Ctrl-C in a terminal reaches the whole process group; the parent decides
    # when its children stop. A handler the parent set for others is not ours.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for number in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, signal.SIG_DFL)
    if plugins:
        from docmill.extract.registry import load_plugins

        load_plugins(plugins)
    if memory_mb:
        import resource

        cap = memory_mb * 1024 * 1024
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    while True:
        try:
            (size,) = _LENGTH.unpack(_receive_exactly(channel, _LENGTH.size))
            document, name, password, charset, tag = pickle.loads(
                _receive_exactly(channel, size)
            )
        except (EOFError, OSError):
            return
        last_sent = 0.0

        def progress(done: int, total: int, unit: str) -> None:
            nonlocal last_sent
            now = time.monotonic()
            if now - last_sent >= PROGRESS_INTERVAL_SECONDS or done == total:
                last_sent = now
                _send(
                    channel, ("progress", {"done": done, "total": total, "unit": unit})
                )

        reply: tuple[Any, ...]
        try:
            # A small original comes as its bytes, anything else as a path.
            source = document if isinstance(document, bytes) else Path(document)
            payload = extract_in_process(
                source, name, limits, password, progress, charset
            )
        except ExtractionError as exc:
            reply = ("error", type(exc).__name__, exc.message, tag)
        else:
            reply = ("ok", payload, tag)
        try:
            _send(channel, reply)
        except OSError:
            return  # the parent is gone, and with it the need for an answer


def _die_with(owner: int) -> None:
    """
    Have the kernel kill this child when its parent goes, on Linux.

    A child busy in a parser never reads its socket, so it would not see
    its owner (the process that made the ExtractionChild) die: killed by
    SIGKILL, the owner left it running to the end of the document and past
    its time limit. The parent is the owner when forked directly, the fork
    server otherwise, which dies with the owner (see ``_server_guard``).
    Either may have died before the request was made: then the owner is
    gone already (or a zombie, not yet reaped), and so must this child be.
    Elsewhere than Linux the child still ends at its next read. The signal
    follows the thread that forked: an ExtractionChild must be started from
    a thread that lives as long as its process.
    """
    die_with_parent()
    if _exited(owner):
        os._exit(1)


def die_with_parent() -> None:
    """Ask the kernel for SIGKILL when the parent goes (Linux only)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)


def _exited(pid: int) -> bool:
    """Whether ``pid`` is gone or a zombie; False where /proc cannot tell."""
    try:
        # A /proc of another PID namespace, or none, would name other pids.
        if os.readlink("/proc/self") != str(os.getpid()):
            return False
    except OSError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    fields = stat.rpartition(")")[2].split()
    return not fields or fields[0] in ("Z", "X")


class AnswerMismatch(RuntimeError):
    """
    A child's answer carried another document's tag: the caller lost track
    of what the child holds. Nothing of the answer may be stored as this
    document's result; the child is killed.
    """


class ExtractionChild:
    """
    One killable extraction process, started on first use.

    Args:
        limits: the per-document safety limits.
        memory_mb: the child's address-space cap (0: none).
        plugins: modules the child imports to register more extractors.
        start_method: "forkserver" (the default, safe in a process with
            threads, such as the server) or "fork" (fastest, for a process
            that starts its children before it starts any thread, such as
            ``docmill extract``).
    """

    def __init__(
        self,
        limits: Limits,
        memory_mb: int = 0,
        plugins: list[str] | None = None,
        start_method: str = "forkserver",
    ) -> None:
        self.limits = limits
        self.memory_mb = memory_mb
        self.plugins = plugins or []
        self.start_method = start_method
        self._process: Any = None
        self._channel: socket.socket | None = None
        self._inbox = _Inbox()
        # Documents sent (``send``) whose answer has not been read yet.
        self.unanswered = 0
        # Which process this is, counted from 1 as each starts: a document
        # sent to an earlier one, killed since, is not in this one.
        self.generation = 0
        # The document handed over by begin(), for callers without a loop.
        self.deadline = 0.0
        self._timeout_seconds = 0.0

    def start(self) -> None:
        """Start the child now rather than at the first document."""
        if self._channel is None:
            self._start()

    def _start(self) -> socket.socket:
        parent_end, child_end = socket.socketpair()
        args = (child_end, self.limits, self.memory_mb, self.plugins, os.getpid())
        process: Any
        if self.start_method == "fork":
            process = _ForkedProcess(_child_main, args, parent_end)
        else:
            if self.start_method == "forkserver":
                context = _forkserver_context()
            else:
                import multiprocessing

                context = multiprocessing.get_context(self.start_method)
            process = context.Process(
                target=_child_main, args=args, daemon=True, name="docmill-extract"
            )
        process.start()
        child_end.close()
        parent_end.setblocking(False)
        self._process, self._channel = process, parent_end
        self.generation += 1
        self._inbox = _Inbox()
        return parent_end

    async def extract(
        self,
        source: Source,
        name: str | None,
        timeout_seconds: float,
        on_progress: ProgressHandler | None = None,
        password: str | None = None,
        charset: str | None = None,
    ) -> Payload:
        """
        Extract one document in the child: a path, or the document's bytes.

        Raises:
            ExtractionTimeout: the deadline passed; the child was killed.
            WorkerCrash: the child died while reading the document.
            ExtractionError: the document could not be read (its subclass
                names why).
        """
        import asyncio

        since = asyncio.get_running_loop().time()
        await self.send(source, name, password, charset=charset)
        return await self.receive(timeout_seconds, since, on_progress)

    async def send(
        self,
        source: Source,
        name: str | None,
        password: str | None = None,
        tag: str | None = None,
        charset: str | None = None,
    ) -> None:
        """
        Queue one document (a path, or its bytes) behind those the child has
        not answered yet; ``name`` is its original name, None for none, and
        ``charset`` the one its upload declared.

        The child reads requests in order, so a document sent while it reads
        another begins the moment that one is answered, without waiting for
        the caller to read the answer. A child is started if none runs. The
        child's answer carries ``tag`` back, for ``receive`` to check.
        """
        import asyncio

        channel = self._channel
        if channel is not None and not self.unanswered and _hung_up(channel):
            # The child died while idle (the out-of-memory killer picks a
            # large idle process too). No document was in it, so none is
            # blamed: this one goes to a fresh child.
            import logging

            logging.getLogger(__name__).warning(
                "an idle extraction process had died; starting another",
                extra={"action": "child_replaced"},
            )
            self.kill()
            channel = None
        channel = channel or self._start()
        request = _request(source, name, password, charset, tag)
        self.unanswered += 1
        try:
            await asyncio.get_running_loop().sock_sendall(
                channel, _LENGTH.pack(len(request)) + request
            )
        except OSError:
            # The child is gone; reading its answer reports the crash.
            pass
        except BaseException:
            # A request cut short would garble every later one.
            self.kill()
            raise

    async def receive(
        self,
        timeout_seconds: float,
        since: float,
        on_progress: ProgressHandler | None = None,
        tag: str | None = None,
    ) -> Payload:
        """
        The outcome of the oldest document sent and not yet answered.

        Args:
            timeout_seconds: how long the child may read the document.
            since: the event loop's time when the child began it (for a
                document queued behind another, when that one was answered).
            on_progress: called with each progress report of the document.
            tag: what that document was sent with; an answer carrying
                another is not this document's.

        Raises what ``extract`` raises, and AnswerMismatch for an answer
        that is another document's. After a timeout, a crash, a mismatch or
        a cancellation the child is killed, and with it every document
        queued behind; the next ``send`` starts a fresh child.
        """
        import asyncio

        channel = self._channel
        if channel is None or not self.unanswered:
            raise ValueError("no document is waiting for its answer")
        try:
            try:
                # One deadline for the whole document; wait_for around each
                # message cost a task of its own per message.
                async with asyncio.timeout_at(since + timeout_seconds):
                    while True:
                        message = await self._receive(channel)
                        if message[0] != "progress":
                            break
                        if on_progress is not None:
                            on_progress(message[1])
            except TimeoutError:
                raise _timeout(timeout_seconds) from None
        except (EOFError, OSError) as exc:
            exitcode = None
            if self._process is not None:
                # Off the event loop: the dead child's exit status may take a
                # moment to arrive, and other slots and requests must not wait.
                await asyncio.to_thread(self._process.join, 2)
                exitcode = self._process.exitcode
            self.kill()
            raise WorkerCrash(_describe_exit(exitcode)) from exc
        except BaseException:
            # Timed out or cancelled (shutdown, lost lease) mid-document: the
            # child may still be working on it, so it cannot be reused.
            self.kill()
            raise
        self.unanswered -= 1
        if tag is not None and message[-1] != tag:
            self.kill()
            raise AnswerMismatch(
                f"the extraction process answered for {message[-1]!r} where "
                f"{tag!r} was expected"
            )
        return self._outcome(message)

    # Blocking use, for a caller with no event loop (``docmill extract``):
    # begin() hands over a document, then collect() is called whenever
    # fileno() is readable or the deadline has passed. Several children are
    # watched at once with select() on their fileno().

    def begin(
        self,
        path: Path,
        name: str | None,
        timeout_seconds: float,
        password: str | None = None,
        charset: str | None = None,
    ) -> None:
        """
        Hand the child one document; its outcome comes from collect().

        Raises:
            WorkerCrash: the child had died; the next begin() starts another.
        """
        channel = self._channel or self._start()
        self.deadline = time.monotonic() + timeout_seconds
        self._timeout_seconds = timeout_seconds
        request = _request(path, name, password, charset, None)
        channel.setblocking(True)
        try:
            channel.sendall(_LENGTH.pack(len(request)) + request)
        except OSError as exc:
            self._crashed(exc)
        finally:
            channel.setblocking(False)

    def fileno(self) -> int:
        """The socket to watch for the outcome of the document begun."""
        if self._channel is None:
            raise ValueError("no document is being extracted")
        return self._channel.fileno()

    def collect(self) -> Payload | None:
        """
        The payload of the document begun, or None while it is not done.

        Raises what extract() raises; after a timeout or a crash the child
        is gone and the next begin() starts a fresh one.
        """
        channel = self._channel
        if channel is None:
            raise ValueError("no document is being extracted")
        try:
            while True:
                message = self._take_message()
                if message is None:
                    if not self._read_available(channel):
                        break
                elif message[0] != "progress":
                    return self._outcome(message)
        except (EOFError, OSError) as exc:
            self._crashed(exc)
        if time.monotonic() >= self.deadline:
            self.kill()
            raise _timeout(self._timeout_seconds)
        return None

    def _outcome(self, message: Any) -> Payload:
        """
        The payload of an answer, or its error raised; a child that ran out
        of memory is replaced, taking any document queued behind with it.

        Its heap may still hold what the failed document allocated (freed
        memory seldom goes back to the system, and a C parser may leak), and
        under its address-space cap that can fail the next document, which
        a fresh child would read.
        """
        try:
            return _outcome(message)
        except MemoryLimitExceeded:
            self.kill()
            raise

    def _read_available(self, channel: socket.socket) -> bool:
        """Add what the socket holds to the inbox; False when it holds nothing."""
        try:
            count = channel.recv_into(self._inbox.room())
        except BlockingIOError:
            return False
        self._inbox.filled(count)
        return True

    def _take_message(self) -> Any:
        """The next whole message in the inbox, or None."""
        if not self._inbox.whole():
            return None
        with self._inbox.take() as data:
            return pickle.loads(data)

    def _crashed(self, exc: BaseException) -> None:
        exitcode = None
        if self._process is not None:
            self._process.join(2)
            exitcode = self._process.exitcode
        self.kill()
        raise WorkerCrash(_describe_exit(exitcode)) from exc

    async def _receive(self, channel: socket.socket) -> Any:
        """The child's next message; EOFError when it is gone."""
        import asyncio

        loop = asyncio.get_running_loop()
        inbox = self._inbox
        while not inbox.whole():
            inbox.filled(await loop.sock_recv_into(channel, inbox.room()))
        # Unpickled in place, never copied: a result can be hundreds of MB.
        # Should this raise or be cancelled, the caller kills the child,
        # and the next one starts with an inbox of its own.
        data = inbox.take()
        if data.nbytes > _UNPICKLE_IN_THREAD_BYTES:
            # Not released here: if this read is cancelled, the thread may
            # still be reading the view.
            return await asyncio.to_thread(pickle.loads, data)
        with data:
            return pickle.loads(data)

    def kill(self) -> None:
        process, channel = self._process, self._channel
        self._process = self._channel = None
        self.unanswered = 0
        if channel is not None:
            channel.close()
        if process is not None and process.is_alive():
            process.kill()
            process.join(timeout=5)

    def close(self) -> None:
        self.kill()


def _request(
    source: Source,
    name: str | None,
    password: str | None,
    charset: str | None,
    tag: str | None,
) -> bytes:
    """A document handed to the child: its bytes, or its path as text."""
    document = source if isinstance(source, bytes) else str(source)
    return pickle.dumps(
        (document, name, password, charset, tag), protocol=pickle.HIGHEST_PROTOCOL
    )


def _hung_up(channel: socket.socket) -> bool:
    """Whether the child's end of ``channel`` is closed: the child is gone."""
    # The kernel closes a dead process's sockets as it dies, before anyone
    # reaps it, so this tells at once what is_alive() learns only later.
    try:
        return channel.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def _outcome(message: Any) -> Payload:
    """The payload of the child's answer, or the error it reports, raised."""
    if message[0] == "ok":
        payload: Payload = message[1]
        return payload
    _kind, class_name, text, _tag = message
    raise error_class(class_name)(text)


def _timeout(timeout_seconds: float) -> ExtractionTimeout:
    return ExtractionTimeout(
        f"extraction did not finish within {timeout_seconds:g} seconds"
    )


def _describe_exit(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"the extraction process was killed by {name} while reading the document"
    return "the extraction process exited while reading the document"
