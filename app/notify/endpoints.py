"""GET /jobs/{id}/deliveries and POST …/deliveries/{delivery_id}/retry."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from fastapi import APIRouter
from pydantic import BaseModel

from app.deps import Ctx, CurrentClient, Session
from app.errors import Conflict, NotFound, problem_response_doc
from app.events import commit
from app.ids import looks_like_id
from app.jobs.endpoints import AUTH_ERRORS, NOT_FOUND, own_job
from app.models import WebhookAttempt, WebhookDelivery
from app.notify import deliveries

router = APIRouter(prefix="/jobs/{job_id}/deliveries", tags=["webhooks"])


class WebhookEvent(StrEnum):
    job_completed = "job.completed"
    job_failed = "job.failed"
    job_canceled = "job.canceled"


class DeliveryStatus(StrEnum):
    pending = deliveries.PENDING
    succeeded = deliveries.SUCCEEDED
    failed = deliveries.FAILED


class AttemptOut(BaseModel):
    attempt: int
    attempted_at: datetime
    status_code: int | None
    response_excerpt: str | None
    error: str | None
    duration_ms: int


class DeliveryOut(BaseModel):
    id: str  # the webhook-id header of every attempt
    event: WebhookEvent
    status: DeliveryStatus
    next_attempt_at: datetime | None
    created_at: datetime
    attempts: list[AttemptOut]

    @classmethod
    def of(cls, delivery: WebhookDelivery, attempts: list[WebhookAttempt]) -> DeliveryOut:
        return cls(
            id=delivery.id,
            event=WebhookEvent(delivery.event_type),
            status=DeliveryStatus(delivery.status),
            next_attempt_at=delivery.next_attempt_at,
            created_at=delivery.created_at,
            attempts=[AttemptOut.model_validate(a, from_attributes=True) for a in attempts],
        )


class DeliveryList(BaseModel):
    data: list[DeliveryOut]


@router.get(
    "",
    operation_id="list_deliveries",
    summary="The webhook deliveries of a job, with every attempt",
    response_model=DeliveryList,
    responses={**AUTH_ERRORS, **NOT_FOUND},
)
async def list_deliveries(job_id: str, session: Session, client: CurrentClient) -> DeliveryList:
    owned = (await own_job(session, client, job_id)).id
    rows = await deliveries.for_job(session, owned)
    return DeliveryList(data=[DeliveryOut.of(d, list(a)) for d, a in rows])


@router.post(
    "/{delivery_id}/retry",
    status_code=202,
    operation_id="retry_delivery",
    summary="Send a failed webhook delivery again",
    response_model=DeliveryOut,
    responses={
        **AUTH_ERRORS,
        **NOT_FOUND,
        409: problem_response_doc("The delivery has not failed"),
    },
)
async def retry_delivery(
    job_id: str, delivery_id: str, ctx: Ctx, session: Session, client: CurrentClient
) -> DeliveryOut:
    owned = (await own_job(session, client, job_id)).id
    delivery = (
        await session.get(WebhookDelivery, delivery_id) if looks_like_id(delivery_id) else None
    )
    if delivery is None or delivery.job_id != owned:
        raise NotFound(f"job {job_id!r} has no delivery {delivery_id[:60]!r}")
    if delivery.status != deliveries.FAILED:
        raise Conflict(
            f"delivery {delivery_id!r} is {delivery.status}; only a failed one is sent again"
        )
    await deliveries.send_again(session, delivery)
    await commit(session, ctx.hub)
    attempts = next(a for d, a in await deliveries.for_job(session, owned) if d.id == delivery.id)
    return DeliveryOut.of(delivery, list(attempts))
