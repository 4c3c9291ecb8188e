"""URL submissions are fetched apart from the extraction slots."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from docmill.api.app import build_services
from docmill.db.migrate import upgrade
from docmill.queue import worker as worker_module
from docmill.queue.store import NewDocument
from docmill.queue.worker import Worker
from docmill.settings import Settings
from docmill.storage import put_bytes
from tests.servers import Handler, LocalServer, local_server
from tests.support import wait_final

pytestmark = pytest.mark.anyio

MakeClient = Callable[..., Awaitable[httpx.AsyncClient]]
LOCAL = ["127.0.0.1/32"]
# Far longer than any test waits: a fetch here ends only when it is stopped.
SLOW_FETCH = {"fetch_allow_networks": LOCAL, "fetch_timeout_seconds": 60.0}


@dataclass
class Drip:
    """A route that sends one byte every 0.1 s of a body that never ends."""

    stop: threading.Event = field(default_factory=threading.Event)
    # When the fetcher went away, one entry per request.
    hung_up: list[float] = field(default_factory=list)

    def __call__(self, handler: Handler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/plain")
        handler.send_header("Content-Length", "1000000")
        handler.end_headers()
        try:
            while not self.stop.wait(0.1):
                handler.wfile.write(b"x")
        except OSError:
            self.hung_up.append(time.monotonic())


@contextmanager
def dripping() -> Iterator[tuple[LocalServer, Drip]]:
    drip = Drip()
    with local_server({"/slow": drip}) as server:
        try:
            yield server, drip
        finally:
            drip.stop.set()


async def wait_status(
    client: httpx.AsyncClient, document_id: str, status: str
) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        body: dict[str, Any] = (await client.get(f"/documents/{document_id}")).json()
        if body["status"] == status:
            return body
        assert time.monotonic() < deadline, f"{document_id} never {status}: {body}"
        await asyncio.sleep(0.05)


async def submit_url(client: httpx.AsyncClient, url: str) -> str:
    created = await client.post("/documents", json={"url": url})
    assert created.status_code == 202
    document_id: str = created.json()["id"]
    return document_id


@pytest.mark.parametrize("slots", [pytest.param(1, id="1"), pytest.param(2, id="2")])
async def test_slow_urls_do_not_keep_a_local_document_waiting(
    make_client: MakeClient, slots: int
) -> None:
    """
    A slot fetched the URL itself: two servers dripping bytes kept a 28-byte
    upload waiting for their fetch timeout, 30 s by default, on two slots.
    """
    client = await make_client(workers=slots, **SLOW_FETCH)
    with dripping() as (server, _drip):
        urls = [await submit_url(client, server.url("/slow")) for _ in range(2)]
        for document_id in urls:
            await wait_status(client, document_id, "processing")
        created = await client.post(
            "/documents",
            files={"file": ("small.csv", b"name,amount\nwidget,3\nbolt,4\n")},
        )
        local = await wait_final(client, created.json()["id"], timeout=20)
        fetching = [(await client.get(f"/documents/{d}")).json() for d in urls]

    assert local["status"] == "completed"
    assert [(body["status"], body["attempts"]) for body in fetching] == [
        ("processing", 1),
        ("processing", 1),
    ]


async def test_cancelled_fetch_stops_and_attaches_nothing(
    make_client: MakeClient,
) -> None:
    client = await make_client(workers=1, **SLOW_FETCH)
    with dripping() as (server, drip):
        document_id = await submit_url(client, server.url("/slow"))
        await wait_status(client, document_id, "processing")
        await client.post(f"/documents/{document_id}/cancel")
        await until_hung_up(drip)
        body = (await client.get(f"/documents/{document_id}")).json()
        original = await client.get(f"/documents/{document_id}/original")

    assert (body["status"], body["attempts"]) == ("cancelled", 1)
    assert original.json()["type"] == "urn:docmill:problem:original-not-available"


async def test_fetch_that_loses_its_claim_before_the_attach_writes_nothing(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The download ends just after a cancel: its original is not attached."""
    real_fetch = worker_module.fetch_to_storage
    changed = settings.model_copy(update=SLOW_FETCH)

    async def fetch_then_cancel(url: str, *args: Any) -> Any:
        fetched = await real_fetch(url, *args)
        await services.store.cancel(document_id)
        return fetched

    monkeypatch.setattr(worker_module, "fetch_to_storage", fetch_then_cancel)
    routes = {"/doc": lambda h: h.answer(200, b"fetched words")}
    with local_server(routes) as server:
        async with opened(changed) as services, running(services, changed) as worker:
            document_id = await services.store.create(
                NewDocument("url", "", 0, "", source_url=server.url("/doc"))
            )
            worker.wake()
            await until_row(services, document_id, lambda r: r.status == "cancelled")
            await asyncio.sleep(0.5)  # time for a wrong attach to land
            row = await services.store.get(document_id)

    assert (row.status, row.storage_key, row.size_bytes) == ("cancelled", "", 0)


async def test_stopping_gives_fetched_and_waiting_urls_back_uncounted(
    settings: Settings,
) -> None:
    changed = settings.model_copy(
        update={"fetch_concurrency": 1, "shutdown_grace_seconds": 30, **SLOW_FETCH}
    )
    with dripping() as (server, drip):
        async with opened(changed) as services:
            async with running(services, changed) as worker:
                documents = [
                    await services.store.create(
                        NewDocument("url", "", 0, "", source_url=server.url("/slow"))
                    )
                    for _ in range(2)
                ]
                worker.wake()
                # One is fetched; the other waits for the one fetch task.
                await until_row(
                    services, documents[0], lambda r: r.status == "processing"
                )
                await until_row(
                    services, documents[1], lambda r: r.claim_token is not None
                )
                stopping = time.monotonic()
                await worker.stop()
                stopped = time.monotonic() - stopping
                await until_hung_up(drip)
            rows = [await services.store.get(d) for d in documents]
            outcomes = [
                [a.outcome for a in await services.store.attempts(d)] for d in documents
            ]
    fetch_tasks = [
        task
        for task in asyncio.all_tasks()
        if getattr(task.get_coro(), "__qualname__", "") == "Worker._fetch_stage"
    ]

    # Not the grace period: no slot would take a fetched document now.
    assert stopped < 10
    assert [(r.status, r.attempts, r.claim_token) for r in rows] == [
        ("pending", 0, None),
        ("pending", 0, None),
    ]
    assert outcomes == [["released"], []]
    assert fetch_tasks == []


async def test_draining_worker_waits_for_its_fetches(settings: Settings) -> None:
    """``worker --once`` ends with the fetched document read, not given back."""

    def slow_answer(handler: Handler) -> None:
        time.sleep(1.0)
        handler.answer(200, b"fetched after a while")

    changed = settings.model_copy(update=SLOW_FETCH)
    with local_server({"/doc": slow_answer}) as server:
        async with opened(changed) as services:
            fetched = await services.store.create(
                NewDocument("url", "", 0, "", source_url=server.url("/doc"))
            )
            stored = await put_bytes(services.storage, b"local words", 1000)
            local = await services.store.create(
                NewDocument("upload", stored.sha256, stored.size_bytes, stored.key)
            )
            worker = Worker(services.store, services.storage, changed, 1)
            await asyncio.wait_for(worker.run(drain=True), 60)
            rows = [await services.store.get(d) for d in (fetched, local)]

    assert [row.status for row in rows] == ["completed", "completed"]


async def test_a_fetched_document_is_next_for_a_slot(
    settings: Settings, tmp_path: Any
) -> None:
    """
    Its start is written before the fetch, so a fetched document waiting
    behind local ones that rank after it would be charged an attempt if the
    worker died meanwhile: it goes first.
    """
    if settings.database_url.startswith("postgresql"):
        pytest.skip(
            "PostgreSQL's worker keeps fewer claims waiting a slot: it claims "
            "the URL only once no local document waits, so the order checked "
            "here does not arise"
        )
    gate = tmp_path / "gate"
    changed = settings.model_copy(
        update={"extractor_plugins": ["docmill.testing"], **SLOW_FETCH}
    )
    routes = {"/doc": lambda h: h.answer(200, b"fetched words")}
    with local_server(routes) as server:
        async with opened(changed) as services:
            # The first holds the slot; the child takes two behind it, and
            # the rest wait for the slot while the URL is fetched.
            contents = [f"DOCMILL-TEST-WAIT {gate}\nheld".encode()]
            contents += [f"local words {n}".encode() for n in range(5)]
            local = []
            for content in contents:
                stored = await put_bytes(services.storage, content, 1000)
                local.append(
                    await services.store.create(
                        NewDocument(
                            "upload", stored.sha256, stored.size_bytes, stored.key
                        )
                    )
                )
            url = await services.store.create(
                NewDocument("url", "", 0, "", source_url=server.url("/doc"))
            )
            async with running(services, changed) as worker:
                worker.wake()
                deadline = time.monotonic() + 30
                while url not in (waiting := [c.document_id for c in worker._ready]):
                    assert time.monotonic() < deadline, "the URL was never fetched"
                    await asyncio.sleep(0.02)
                gate.touch()
                for document_id in [*local, url]:
                    await until_row(
                        services, document_id, lambda r: r.status == "completed"
                    )

    # What the slot takes next, in order.
    assert waiting == [url, *local[-len(waiting) + 1 :]]
    assert len(waiting) > 1


async def test_stopping_waits_for_a_failed_fetch_to_be_recorded(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    A stop that came while a fetch's failure was being written left the
    write running on its own: the store closed under it (the document stayed
    processing, to its lease) and its error surfaced in no one's hands.
    """
    changed = settings.model_copy(update=SLOW_FETCH)
    writing = asyncio.Event()

    async def slow_fail(*args: Any, **kwargs: Any) -> Any:
        writing.set()
        await asyncio.sleep(0.5)
        return await real_fail(*args, **kwargs)

    routes = {"/gone": lambda h: h.answer(404, b"not here")}
    with local_server(routes) as server:
        async with opened(changed) as services:
            real_fail = services.store.fail
            monkeypatch.setattr(services.store, "fail", slow_fail)
            document_id = await services.store.create(
                NewDocument("url", "", 0, "", source_url=server.url("/gone"))
            )
            async with running(services, changed) as worker:
                worker.wake()
                await asyncio.wait_for(writing.wait(), 30)
                await worker.stop(0)
                row = await services.store.get(document_id)

    assert (row.status, row.attempts, row.error_code) == (
        "failed",
        1,
        "fetch_failed",
    )


@asynccontextmanager
async def opened(settings: Settings) -> AsyncIterator[Any]:
    """The store and storage of ``settings``, on an upgraded database."""
    services = build_services(settings)
    await upgrade(services.engine)
    try:
        yield services
    finally:
        await services.engine.dispose()
        await services.store.close()


@asynccontextmanager
async def running(services: Any, settings: Settings) -> AsyncIterator[Worker]:
    """A worker with one slot, stopped on exit."""
    worker = Worker(services.store, services.storage, settings, 1)
    task = asyncio.ensure_future(worker.run())
    try:
        yield worker
    finally:
        await worker.stop(0)
        await task


async def until_row(
    services: Any, document_id: str, check: Callable[[Any], bool]
) -> Any:
    deadline = time.monotonic() + 30
    while not check(row := await services.store.get(document_id)):
        assert time.monotonic() < deadline, f"{document_id}: {row}"
        await asyncio.sleep(0.05)
    return row


async def until_hung_up(drip: Drip) -> None:
    """Wait until the fetcher has hung up on ``drip`` (a fetch ended)."""
    deadline = time.monotonic() + 20
    while not drip.hung_up:
        assert time.monotonic() < deadline, "the fetch went on"
        await asyncio.sleep(0.05)
