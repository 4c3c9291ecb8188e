"""
Taking documents in: one at a time, or many in a batch.

Both paths share the same rules. The queue's depth is checked first (429
with ``Retry-After`` past ``DOCMILL_MAX_PENDING``), uploads stream straight
to storage, an ``Idempotency-Key`` makes a repeated request return the first
document, and ``dedupe`` reuses a completed result for the same bytes.

A full queue refuses new work only: a replay of an ``Idempotency-Key`` and
a dedupe hit queue nothing, so they are answered as they would be with room.
Whether a submission is one of those is known only once its body is read,
so a full queue still reads a submission that carries a key or might ask
for dedupe before refusing it.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError

from docmill.api import auth
from docmill.api.auth import GuardedRoute
from docmill.api.intake import Form, fingerprint, read_body, read_multipart
from docmill.api.problems import PROBLEM_TYPE_PREFIX, Problem, load_json
from docmill.api.schemas import BatchItemOut, BatchOut, TextSubmission
from docmill.exceptions import IdempotencyConflict, QueueFull
from docmill.queue.store import NewDocument, Submitted
from docmill.storage import (
    StoredOriginal,
    describe_small,
    put_bytes,
    small_in_database,
)

router = APIRouter(route_class=GuardedRoute)

MAX_BATCH_ITEMS = 100
# Multipart framing and the small form fields around the file.
FORM_OVERHEAD_BYTES = 65536
QUEUE_FULL_RETRY_SECONDS = 10


def services_of(request: Request) -> Any:
    return request.app.state.services


class PendingGauge:
    """
    The queue's depth for back-pressure, counted only when it matters.

    Counting the pending documents on every submission cost a statement (on
    SQLite, several hops to aiosqlite's thread) per request. Here the count
    is taken again once it is a second old, or when the estimate (the last
    count plus what this process queued since) comes within a tenth of the
    limit. Near the limit every submission is checked against a count of its
    own, as before; far from it, what other processes queued in the last
    second goes unseen, which cannot carry the queue past the limit by more
    than a second's worth of their submissions.

    A second-old count is taken again once, for all the submissions that
    arrive while it runs: each of them starting its own made a burst of
    counts (one per concurrent client) every second under load.
    """

    RECOUNT_SECONDS = 1.0

    def __init__(self) -> None:
        self.counted = 0
        self.added = 0
        self.counted_at = -math.inf
        self.recount: asyncio.Task[int] | None = None

    def needs_count(self, limit: int) -> bool:
        fresh = time.monotonic() - self.counted_at < self.RECOUNT_SECONDS
        return not fresh or self.near(limit)

    def near(self, limit: int) -> bool:
        return (self.counted + self.added) * 10 >= limit * 9

    # Within a tenth of the limit or this many documents of it, whichever is
    # more, the store counts the queue inside each insert: so a small limit
    # always is (a burst of parallel uploads must not all pass one
    # estimate), and a large one once other processes' unseen second of
    # submissions could carry the queue past it.
    REACH_MARGIN = 1_000

    def within_reach(self, limit: int) -> bool:
        margin = max(limit // 10, self.REACH_MARGIN)
        return self.counted + self.added + margin >= limit

    def count(self, pending: int) -> None:
        self.counted, self.added = pending, 0
        self.counted_at = time.monotonic()

    def queued(self) -> None:
        self.added += 1

    async def shared_count(self, count: Callable[[], Awaitable[int]]) -> int:
        """Run ``count``, or join the one already running, and record it."""
        recount = self.recount
        if recount is None or recount.get_loop() is not asyncio.get_running_loop():
            recount = self.recount = asyncio.ensure_future(self._count(count))
            recount.add_done_callback(self._counted)
        # Shielded: one caller going away must not cancel the others' count.
        return await asyncio.shield(recount)

    async def _count(self, count: Callable[[], Awaitable[int]]) -> int:
        pending = await count()
        self.count(pending)
        return pending

    def _counted(self, recount: asyncio.Task[int]) -> None:
        if self.recount is recount:
            self.recount = None
        if not recount.cancelled():
            # Read here, so a failure that every caller gave up on is not
            # reported as never retrieved; the callers still see it.
            recount.exception()


async def capacity_refusal(services: Any) -> Problem | None:
    """
    The 429 to answer new work with while the queue is deeper than
    ``max_pending``; None while there is room.

    Returned rather than raised: the caller refuses with it once the
    submission turns out to be new work (see ``may_queue_nothing``).
    """
    limit = services.settings.max_pending
    gauge: PendingGauge = services.pending
    if not limit or not gauge.needs_count(limit):
        return None
    if gauge.near(limit):
        pending = await services.store.count_pending(up_to=limit)
        gauge.count(pending)
    else:
        pending = await gauge.shared_count(
            lambda: services.store.count_pending(up_to=limit)
        )
    if pending >= limit:
        return queue_full(limit, pending)
    return None


def may_queue_nothing(new: NewDocument) -> bool:
    """
    Whether ``new`` could be answered without queueing anything: a key's
    replay, or a dedupe hit. The store tells which, in its transaction.
    """
    return new.idempotency_key is not None or (new.dedupe and bool(new.sha256))


def queue_full(limit: int, pending: int, detail: str | None = None) -> Problem:
    return Problem(
        429,
        "queue-full",
        detail
        or f"{limit} or more documents are waiting, the limit is {limit}; "
        "retry after the time in Retry-After",
        headers={"Retry-After": str(QUEUE_FULL_RETRY_SECONDS)},
        pending=pending,
    )


def idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not 1 <= len(key) <= 200:
        raise Problem(
            422, "validation", "`Idempotency-Key` must be 1 to 200 characters"
        )
    return key


def validation_problem(exc: ValidationError, detail: str) -> Problem:
    errors = [
        {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
        for e in exc.errors()
    ]
    return Problem(422, "validation", detail, errors=errors)


def parse_submission(raw: Any) -> TextSubmission:
    try:
        submission = TextSubmission.model_validate(raw)
    except ValidationError as exc:
        raise validation_problem(exc, "the submission is not valid") from exc
    if (submission.content is None) == (submission.url is None):
        raise Problem(
            422,
            "validation",
            "give exactly one of `content` and `url`",
            errors=[
                {
                    "loc": ["content"],
                    "msg": "exactly one of content and url is required",
                    "type": "missing",
                }
            ],
        )
    return submission


def form_submission(fields: dict[str, str]) -> TextSubmission:
    """The form fields of an upload, checked by the same model as JSON."""
    raw: dict[str, Any] = {k: v for k, v in fields.items() if v != ""}
    raw.pop("content", None)
    raw.pop("url", None)
    if "metadata" in raw:
        raw["metadata"] = load_json(raw["metadata"], "`metadata`")
        if not isinstance(raw["metadata"], dict):
            raise Problem(422, "validation", "`metadata` must be a JSON object")
    raw["content"] = ""
    return parse_submission(raw)


def new_document(
    submission: TextSubmission,
    stored: StoredOriginal | None,
    *,
    source: str,
    filename: str | None,
    owner: str | None,
    key: str | None,
    original_bytes: bytes | None = None,
    charset: str | None = None,
) -> NewDocument:
    sha256 = stored.sha256 if stored else ""
    return NewDocument(
        source=source,
        sha256=sha256,
        size_bytes=stored.size_bytes if stored else 0,
        storage_key=stored.key if stored else "",
        title=submission.title,
        filename=filename,
        user_metadata=submission.metadata,
        priority=submission.priority,
        client_ref=submission.client_ref,
        owner=owner,
        source_url=submission.url,
        callback_url=submission.callback_url,
        dedupe=submission.dedupe,
        idempotency_key=key,
        original_bytes=original_bytes,
        charset=charset,
        # Only an Idempotency-Key's replay compares it.
        fingerprint=fingerprint(
            source,
            sha256,
            submission.url,
            filename,
            submission.model_dump(exclude={"content"}),
            # Only when declared: a key's replay after the upgrade that
            # added charsets still matches the request it first answered.
            *([charset] if charset is not None else []),
        )
        if key is not None
        else "",
    )


async def queue_new(services: Any, new: NewDocument) -> Submitted:
    targets = {"url": new.source_url, "callback_url": new.callback_url}
    for field, url in targets.items():
        if url is None:
            continue
        try:
            await check_target(services, url, field)
        except Problem:
            await discard_unused(services, new.storage_key)
            raise
    try:
        submitted: Submitted = await services.store.submit(new)
    except IdempotencyConflict as exc:
        await discard_unused(services, new.storage_key)
        raise Problem(
            409,
            "idempotency-conflict",
            str(exc),
            document_id=exc.document_id,
        ) from exc
    except QueueFull as exc:
        # The check that holds: made in the inserting transaction, so
        # submissions that passed check_capacity together cannot all land.
        await discard_unused(services, new.storage_key)
        raise queue_full(exc.limit, exc.limit) from exc
    services.pending.queued()
    return submitted


# How long a submission waits for a URL's host name to resolve.
RESOLVE_SECONDS = 2.0


async def check_target(services: Any, url: str, field: str) -> None:
    """
    Refuse a URL (the document's ``url`` or its ``callback_url``) whose host
    the fetch or webhook guard would refuse.

    The worker and each delivery check again (a name can point elsewhere by
    then); a name that does not resolve now is accepted and left to them.

    Raises:
        Problem: 422 for a URL without a host, or one that is or resolves to
            a private, loopback, link-local or reserved address not allowed
            by ``DOCMILL_FETCH_ALLOW_NETWORKS``.
    """
    import httpx

    from docmill.exceptions import FetchError, ForbiddenAddress
    from docmill.fetch import guard_from

    def refused(slug: str, message: str) -> Problem:
        error = {"loc": [field], "msg": message, "type": slug}
        return Problem(422, slug, f"`{field}`: {message}", errors=[error])

    try:
        target = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise refused("validation", f"not a valid URL: {exc}") from exc
    if not target.host:
        raise refused("validation", "the URL has no host")
    try:
        async with asyncio.timeout(RESOLVE_SECONDS):
            await guard_from(services.settings).pin(target)
    except ForbiddenAddress as exc:
        raise refused("forbidden-address", str(exc)) from exc
    except (FetchError, TimeoutError):
        return


async def discard_unused(services: Any, storage_key: str) -> None:
    """Remove an original that a refused submission left behind."""
    if storage_key and not await services.store.storage_key_used(storage_key):
        await services.storage.delete(storage_key)


async def read_form(request: Request, services: Any, max_files: int) -> Form:
    return await read_multipart(
        request.headers["content-type"],
        request.stream(),
        services.storage,
        services.settings.max_upload_bytes,
        max_files=max_files,
        timeout_seconds=services.settings.upload_timeout_seconds,
    )


async def accept_single(request: Request) -> Submitted:
    """Read one submission from the request and queue it."""
    services = services_of(request)
    settings = services.settings
    owner = auth.owner(request)
    key = idempotency_key(request)
    refusal = await capacity_refusal(services)
    declared = request.headers.get("content-length", "")
    limit = settings.max_upload_bytes + FORM_OVERHEAD_BYTES
    if declared.isdigit() and int(declared) > limit:
        raise Problem(
            413,
            "too-large",
            f"the request is larger than the limit of {settings.max_upload_bytes} "
            "bytes",
        )
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await read_form(request, services, max_files=1)
        if not form.files or form.files[0].stored is None:
            raise Problem(422, "validation", "the upload has no `file` part")
        stored = form.files[0].stored
        try:
            submission = form_submission(form.fields)
        except Problem:
            await discard_unused(services, stored.key)
            raise
        new = new_document(
            submission,
            stored,
            source="upload",
            filename=form.files[0].filename,
            owner=owner,
            key=key,
            original_bytes=form.files[0].data,
            charset=form.files[0].charset,
        )
    elif content_type.startswith("application/json"):
        body = await read_body(request.stream(), settings.upload_timeout_seconds, limit)
        raw = load_json(body, "the body")
        new = await json_document(services, raw, owner=owner, key=key)
    else:
        raise Problem(
            415,
            "unsupported-media-type",
            "send a multipart/form-data upload with a `file` field, or JSON "
            "with a `content` or `url` field",
        )
    if refusal is not None and not may_queue_nothing(new):
        await discard_unused(services, new.storage_key)
        raise refusal
    return await queue_new(services, new)


async def json_document(
    services: Any, raw: Any, *, owner: str | None, key: str | None
) -> NewDocument:
    submission = parse_submission(raw)
    stored = None
    source = "url"
    inline = None
    if submission.content is not None:
        source = "text"
        data = submission.content.encode("utf-8")
        limit = services.settings.max_upload_bytes
        if small_in_database(services.storage, len(data)):
            # Written with the document row, in its transaction.
            stored, inline = describe_small(data, limit), data
        else:
            stored = await put_bytes(services.storage, data, limit)
    return new_document(
        submission,
        stored,
        source=source,
        filename=None,
        owner=owner,
        key=key,
        original_bytes=inline,
    )


def item_problem(request: Request, problem: Problem) -> dict[str, Any]:
    return {
        "type": PROBLEM_TYPE_PREFIX + problem.slug,
        "title": HTTPStatus(problem.status).phrase,
        "status": problem.status,
        "detail": problem.detail,
        "instance": request.url.path,
        **problem.extensions,
    }


@router.post(
    "/documents/batch",
    response_model=BatchOut,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": {
                                "type": "array",
                                "items": {"type": "string", "format": "binary"},
                                "description": "The documents, each a part "
                                "named `file`; a file in any other part is 422. "
                                "Each part's Content-Type may declare its "
                                "`charset`, as in `POST /documents`.",
                            },
                            "metadata": {
                                "type": "string",
                                "description": "A JSON object, as text.",
                            },
                            "priority": {"type": "integer"},
                            "client_ref": {"type": "string"},
                            "callback_url": {"type": "string"},
                        },
                    }
                },
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/BatchSubmission"}
                },
            },
        }
    },
    responses={
        413: {"description": "Too large"},
        415: {"description": "Unsupported media type"},
        422: {"description": "Invalid"},
        429: {"description": "Queue full or rate limited"},
    },
    tags=["documents"],
)
async def submit_batch(request: Request) -> BatchOut:
    """
    Queue many documents: several `file` parts (the other form fields apply
    to each), or JSON `{"items": [...]}`. Items are answered in order, each
    with its own status; an invalid item fails alone.
    """
    from docmill.api.routes import document_by_id

    services = services_of(request)
    owner = auth.owner(request)
    key = idempotency_key(request)
    refusal = await capacity_refusal(services)
    content_type = request.headers.get("content-type", "")
    outcomes: list[NewDocument | Problem] = []
    if content_type.startswith("multipart/form-data"):
        form = await read_form(request, services, max_files=MAX_BATCH_ITEMS)
        if not form.files:
            raise Problem(422, "validation", "the batch has no file parts")
        submission = form_submission(form.fields)
        for index, part in enumerate(form.files):
            if part.stored is None:
                assert part.error is not None
                outcomes.append(part.error)
                continue
            outcomes.append(
                new_document(
                    submission,
                    part.stored,
                    source="upload",
                    filename=part.filename,
                    owner=owner,
                    key=f"{key}#{index}" if key else None,
                    original_bytes=part.data,
                    charset=part.charset,
                )
            )
    elif content_type.startswith("application/json"):
        # Read whole before its items are: held to one submission's limit,
        # declared or streamed, as a single JSON body is. Its items' contents
        # together may not pass what one of them may carry; large documents
        # go as files, which are streamed to storage.
        settings = services.settings
        limit = settings.max_upload_bytes + FORM_OVERHEAD_BYTES
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise Problem(
                413,
                "too-large",
                f"the request is larger than the limit of {limit} bytes",
            )
        body = load_json(
            await read_body(request.stream(), settings.upload_timeout_seconds, limit),
            "the body",
        )
        if not isinstance(body, dict):
            raise Problem(
                422, "validation", "the body must be a JSON object with `items`"
            )
        items = body.get("items")
        if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH_ITEMS:
            raise Problem(
                422,
                "validation",
                f"`items` must be a list of 1 to {MAX_BATCH_ITEMS} submissions",
            )
        for index, raw in enumerate(items):
            try:
                outcomes.append(
                    await json_document(
                        services,
                        raw,
                        owner=owner,
                        key=f"{key}#{index}" if key else None,
                    )
                )
            except Problem as problem:
                outcomes.append(problem)
    else:
        raise Problem(
            415,
            "unsupported-media-type",
            "send multipart/form-data with `file` parts, or JSON with `items`",
        )

    await check_batch_room(services, outcomes, refusal)
    answers = []
    for index, outcome in enumerate(outcomes):
        if isinstance(outcome, NewDocument):
            try:
                submitted = await queue_new(services, outcome)
            except Problem as problem:
                outcome = problem
            else:
                document = await document_by_id(services, submitted.document_id)
                answers.append(BatchItemOut(index=index, status=202, document=document))
                continue
        answers.append(
            BatchItemOut(
                index=index,
                status=outcome.status,
                error=item_problem(request, outcome),
            )
        )
    return BatchOut(items=answers)


async def check_batch_room(
    services: Any, outcomes: list[NewDocument | Problem], refusal: Problem | None
) -> None:
    """
    Refuse a whole batch whose new documents would carry the queue past
    ``max_pending``, removing the originals it stored.

    ``refusal`` is the early count's answer (``capacity_refusal``): with
    it, a batch none of whose items can be a replay or a dedupe hit is
    refused without a second count. Only items that would queue a
    document need a place; which of the others are replays or hits the
    store is asked only when the batch does not fit otherwise.

    A batch that fits here can still meet a full queue item by item when
    other submissions race it: each insert checks again in its transaction,
    and an item refused there is answered 429 in its place.
    """
    limit = services.settings.max_pending
    new = [outcome for outcome in outcomes if isinstance(outcome, NewDocument)]
    if not limit or not new:
        return
    needing = new
    if refusal is None or any(may_queue_nothing(document) for document in new):
        pending = await services.store.count_pending(up_to=limit)
        services.pending.count(pending)
        if pending + len(new) <= limit:
            return
        needing = [
            document
            for document in new
            if not may_queue_nothing(document)
            or await services.store.would_queue(document)
        ]
        if pending + len(needing) <= limit:
            return
    else:
        pending = int(refusal.extensions["pending"])
    for document in new:
        await discard_unused(services, document.storage_key)
    raise queue_full(
        limit,
        pending,
        f"the batch's {len(needing)} new documents would carry the queue past its "
        f"limit of {limit} ({pending} are waiting); retry after the time in "
        "Retry-After",
    )


def accepted_headers(submitted: Submitted) -> list[tuple[bytes, bytes]]:
    """``Location`` of the document, and whether this answer is a replay."""
    headers = [(b"location", f"/documents/{submitted.document_id}".encode())]
    if submitted.replayed:
        headers.append((b"idempotent-replayed", b"true"))
    return headers
