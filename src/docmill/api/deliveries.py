"""A document's webhook deliveries, and sending one again."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request

from docmill.api import auth
from docmill.api.auth import GuardedRoute
from docmill.api.problems import Problem
from docmill.api.schemas import DeliveryOut
from docmill.exceptions import DocumentNotFound
from docmill.queue.store import utcnow

router = APIRouter(route_class=GuardedRoute)


async def _check_owner(request: Request, document_id: str) -> None:
    row = await request.app.state.services.store.get(document_id)
    owner = auth.owner(request)
    if owner is not None and row.owner != owner:
        raise DocumentNotFound(document_id)


def _delivery_out(row: object) -> DeliveryOut:
    delivery = DeliveryOut.model_validate(row, from_attributes=True)
    if delivery.status != "pending":
        delivery.next_attempt_at = None
    return delivery


@router.get(
    "/documents/{document_id}/deliveries",
    response_model=list[DeliveryOut],
    tags=["webhooks"],
)
async def list_deliveries(document_id: str, request: Request) -> list[DeliveryOut]:
    """Every webhook event of the document, oldest first, with its tries."""
    await _check_owner(request, document_id)
    rows = await request.app.state.services.outbox.list(document_id)
    return [_delivery_out(row) for row in rows]


@router.post(
    "/documents/{document_id}/deliveries/{number}/redeliver",
    status_code=202,
    response_model=DeliveryOut,
    responses={404: {"description": "No such delivery"}},
    tags=["webhooks"],
)
async def redeliver(
    document_id: str,
    # Numbers are stored as 32-bit integers on PostgreSQL, which refused a
    # larger one with a 500; SQLite overflowed past 64 bits.
    number: Annotated[int, Path(ge=1, le=2**31 - 1)],
    request: Request,
) -> DeliveryOut:
    """Send a delivery again, with a fresh set of tries, whatever its status."""
    await _check_owner(request, document_id)
    outbox = request.app.state.services.outbox
    if not await outbox.redeliver(document_id, number, utcnow()):
        raise Problem(
            404,
            "delivery-not-found",
            f"document {document_id!r} has no delivery {number}",
        )
    worker = request.app.state.services.worker
    if worker is not None:
        worker.wake()
    rows = await outbox.list(document_id)
    return next(_delivery_out(row) for row in rows if row.number == number)
