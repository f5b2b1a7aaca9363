"""GET /metrics: this process's counters, and the queue read from the database."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Gauge
from prometheus_client.exposition import generate_latest
from sqlalchemy.exc import SQLAlchemyError

from app.db import utcnow
from app.deps import Ctx, UnmeteredClient
from app.jobs.endpoints import AUTH_ERRORS
from app.queue.repository import queue_stats

log = logging.getLogger(__name__)

router = APIRouter(tags=["health"])

_QUEUE_TIMEOUT_SECONDS = 5.0  # well inside Prometheus's default scrape timeout (10 s)

DESCRIPTION = """Prometheus text format. Unlike the health checks beside it, this needs an
API key (`Authorization: Bearer <api_key>`, any client's): the numbers are internal.

Counters and histograms are this process's own, since it started (a separate
`stt-gateway worker` process counts its own vendor calls and deliveries). The
queue gauges (`stt_queue_due_tasks`, `stt_queue_oldest_due_age_seconds`) are
read from the database at each scrape, and are left out when it does not answer.
"""


async def _queue_gauges(ctx: Ctx) -> bytes:
    """The queue as the database has it now, in a registry of its own (no stale values)."""
    try:
        async with asyncio.timeout(_QUEUE_TIMEOUT_SECONDS), ctx.autocommit_sessions() as session:
            due, oldest = await queue_stats(session)
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        log.warning("metrics: reading the queue failed (%s)", type(exc).__name__)
        return b""
    registry = CollectorRegistry(auto_describe=False)
    Gauge(
        "stt_queue_due_tasks", "Tasks due now and not claimed by a worker", registry=registry
    ).set(due)
    Gauge(
        "stt_queue_oldest_due_age_seconds",
        "How long the oldest due task has waited past its run time (0 if none is due)",
        registry=registry,
    ).set(max((utcnow() - oldest).total_seconds(), 0.0) if oldest is not None else 0.0)
    return generate_latest(registry)


@router.get(
    "/metrics",
    operation_id="metrics",
    summary="Prometheus metrics (needs an API key)",
    description=DESCRIPTION,
    response_class=Response,
    responses={
        200: {"description": "Prometheus text exposition format", "content": {"text/plain": {}}},
        401: AUTH_ERRORS[401],  # never rate limited
    },
)
async def metrics(ctx: Ctx, _client: UnmeteredClient) -> Response:
    body = generate_latest(REGISTRY) + await _queue_gauges(ctx)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
