"""Webhook deliveries: written with the status change that causes them, and their attempts.

A delivery's body is fixed when the event happens, so every attempt sends the
same event under the same ``webhook-id``; only ``webhook-timestamp`` and the
signature are fresh each time.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Insert, Select, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import ReturningUpdate

from app.db import utcnow
from app.ids import new_id
from app.jobs.schemas import JobOut
from app.models import Client, Job, WebhookAttempt, WebhookDelivery, table_of
from app.queue import repository as queue

DELIVER_TASK = "deliver"
PENDING, SUCCEEDED, FAILED = "pending", "succeeded", "failed"


async def record_event(
    session: AsyncSession, job_id: str, event_type: str, *, job: Job | None = None
) -> None:
    """If the job has a callback_url, write its delivery and the task that sends it
    (in the caller's transaction: the status change and the event commit together).

    ``job``: the job as the status change left it (its UPDATE's RETURNING), which
    spares reading it again."""
    if job is None:
        job = await session.get(Job, job_id, populate_existing=True)
    if job is None or not job.callback_url:
        return
    now, delivery_id = utcnow(), new_id("msg")
    delivery = {
        "id": delivery_id,
        "job_id": job_id,
        "event_type": event_type,
        "payload": {
            "type": event_type,
            "timestamp": now.isoformat().replace("+00:00", "Z"),
            "data": JobOut.of(job).model_dump(mode="json"),
        },
        "status": PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }
    await session.execute(_insert(WebhookDelivery, tuple(delivery)), delivery)
    await queue.enqueue(session, DELIVER_TASK, job_id, ref=delivery_id)


@dataclass(frozen=True)
class Target:
    delivery: WebhookDelivery
    url: str
    secrets: list[str]  # the client's current secret, and the previous one during an overlap


async def target(session: AsyncSession, delivery_id: str | None) -> Target | None:
    """What an attempt needs, or None when the delivery is gone or no longer pending."""
    if delivery_id is None:
        return None
    row = (await session.execute(_select_target(), {"delivery_id": delivery_id})).first()
    if row is None:
        return None
    delivery, url, client = row
    if delivery.status != PENDING or not url:
        return None
    secrets = [client.webhook_secret]
    expires = client.previous_secret_expires_at
    if client.previous_webhook_secret and expires is not None and expires > utcnow():
        secrets.append(client.previous_webhook_secret)
    return Target(delivery, url, secrets)


async def record_attempt(
    session: AsyncSession,
    delivery_id: str,
    attempt: WebhookAttempt,
    *,
    status: str,
    next_attempt_at: datetime | None,
) -> None:
    # One UPDATE, not a read and then a write; no row: the delivery was deleted
    # (with its job) meanwhile, and the attempt has nothing to belong to.
    settled = {"delivery_id": delivery_id, "attempts_now": attempt.attempt,
               "status_now": status, "next_attempt_now": next_attempt_at}  # fmt: skip
    if await session.scalar(_settle_attempt(), settled) is not None:
        values = {name: getattr(attempt, name) for name in _ATTEMPT_COLUMNS}
        await session.execute(_insert(WebhookAttempt, _ATTEMPT_COLUMNS), values)


async def mark_failed(session: AsyncSession, delivery_id: str | None) -> None:
    delivery = await session.get(WebhookDelivery, delivery_id) if delivery_id else None
    if delivery is not None:
        delivery.status, delivery.next_attempt_at = FAILED, None


async def for_job(
    session: AsyncSession, job_id: str
) -> list[tuple[WebhookDelivery, Sequence[WebhookAttempt]]]:
    deliveries = list(
        await session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.job_id == job_id)
            .order_by(WebhookDelivery.created_at)
        )
    )
    attempts = list(
        await session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_([d.id for d in deliveries]))
            .order_by(WebhookAttempt.id)
        )
    )
    return [(d, [a for a in attempts if a.delivery_id == d.id]) for d in deliveries]


async def send_again(session: AsyncSession, delivery: WebhookDelivery) -> None:
    """A failed delivery goes out once more, now (if that fails too, it stays failed)."""
    delivery.status, delivery.next_attempt_at = PENDING, utcnow()
    await queue.enqueue(session, DELIVER_TASK, delivery.job_id, ref=delivery.id)


# The statements of every delivery, built once with bound parameters (on the
# tables for writes): building a statement, and the ORM's unit of work around
# it, cost more than running a cached one.

_ATTEMPT_COLUMNS = ("delivery_id", "attempt", "attempted_at", "status_code",
                    "response_excerpt", "error", "duration_ms")  # fmt: skip


@functools.cache
def _insert(
    model: type[WebhookDelivery] | type[WebhookAttempt], columns: tuple[str, ...]
) -> Insert:
    return insert(table_of(model)).values({name: bindparam(name) for name in columns})


@functools.cache
def _select_target() -> Select[WebhookDelivery, str | None, Client]:
    return (
        select(WebhookDelivery, Job.callback_url, Client)
        .join(Job, Job.id == WebhookDelivery.job_id)
        .join(Client, Client.id == Job.client_id)
        .where(WebhookDelivery.id == bindparam("delivery_id"))
    )


@functools.cache
def _settle_attempt() -> ReturningUpdate[str]:
    deliveries = table_of(WebhookDelivery)
    return (
        update(deliveries)
        .where(deliveries.c.id == bindparam("delivery_id"))
        .values(
            attempts=bindparam("attempts_now"),
            status=bindparam("status_now"),
            next_attempt_at=bindparam("next_attempt_now"),
        )
        .returning(deliveries.c.id)
    )
