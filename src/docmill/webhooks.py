"""
Sending webhook deliveries from the outbox, signed.

Each POST carries the event as JSON and these headers:

- ``Docmill-Event``: ``document.completed`` or ``document.failed``
- ``Docmill-Delivery``: ``<document id>:<number>``, the same on every retry,
  so receivers can drop duplicates (delivery is at least once)
- ``Docmill-Signature``: ``t=<unix seconds>,v1=<hex>``, where ``v1`` is
  HMAC-SHA256 with ``DOCMILL_WEBHOOK_SECRET`` over ``"<t>." + body``;
  receivers recompute it and reject old ``t`` to stop replays

A 2xx answer delivers; anything else is retried with doubling delays up to
``DOCMILL_WEBHOOK_MAX_ATTEMPTS``. Targets pass the same address guard as
URL submissions, and redirects are not followed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import time

import httpx

from docmill.db.errors import log_failure
from docmill.exceptions import FetchError
from docmill.fetch import AddressGuard, guard_from
from docmill.queue.outbox import Delivery, Outbox
from docmill.queue.store import utcnow
from docmill.settings import Settings

logger = logging.getLogger(__name__)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Docmill-Signature`` header value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, header: str, body: bytes, tolerance_seconds: int = 300) -> bool:
    """Check a ``Docmill-Signature`` header, as a receiver would."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance_seconds:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))


class DeliveryLoop:
    """
    Sends due deliveries until cancelled.

    Args:
        outbox: where deliveries are claimed and recorded.
        settings: secret, timeouts, the address allow-list, the poll interval.
    """

    def __init__(self, outbox: Outbox, settings: Settings) -> None:
        self.outbox = outbox
        self.settings = settings
        self.guard: AddressGuard = guard_from(settings)
        self.wakeup = asyncio.Event()

    async def run(self) -> None:
        async with httpx.AsyncClient(
            trust_env=False,
            follow_redirects=False,
            timeout=self.settings.webhook_timeout_seconds,
        ) as client:
            while True:
                try:
                    due = await self.outbox.claim_due(utcnow())
                except Exception as exc:
                    log_failure(logger, "could not read the webhook outbox", exc)
                    due = []
                if due:
                    await asyncio.gather(*(self._send(client, d) for d in due))
                    continue
                self.wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self.wakeup.wait(), self.settings.poll_seconds
                    )

    async def _send(self, client: httpx.AsyncClient, delivery: Delivery) -> None:
        body = delivery.payload.encode()
        headers = {
            "Content-Type": "application/json",
            "Docmill-Event": delivery.event,
            "Docmill-Delivery": f"{delivery.document_id}:{delivery.number}",
        }
        if self.settings.webhook_secret:
            headers["Docmill-Signature"] = sign(
                self.settings.webhook_secret, int(time.time()), body
            )
        status_code = None
        error = None
        retryable = True
        try:
            pinned = await self.guard.pin(httpx.URL(delivery.url))
            response = await client.post(
                pinned.url,
                content=body,
                headers=pinned.headers | headers,
                extensions=pinned.extensions,
            )
            status_code = response.status_code
            if not response.is_success:
                error = f"HTTP {status_code}"
        except FetchError as exc:
            error, retryable = exc.message, exc.retryable
        except httpx.InvalidURL as exc:
            error, retryable = f"invalid URL: {exc}", False
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        ok = error is None
        outcome = await self.outbox.record(
            delivery,
            utcnow(),
            ok=ok,
            status_code=status_code,
            error=error,
            retryable=retryable,
        )
        extra = {
            "action": "webhook_" + outcome,
            "document_id": delivery.document_id,
            "delivery": delivery.number,
        }
        if ok:
            logger.info(
                "webhook %s:%d delivered (%s)",
                delivery.document_id,
                delivery.number,
                delivery.event,
                extra=extra,
            )
        else:
            logger.warning(
                "webhook %s:%d try %d failed: %s; now %s",
                delivery.document_id,
                delivery.number,
                delivery.attempts,
                error,
                outcome,
                extra=extra,
            )
