"""GET /jobs/{id}/events: the job's changes as Server-Sent Events, until it is terminal.

Woken by the same announcements as ``?wait`` (NOTIFY on PostgreSQL, in-process
on SQLite); a lost wake-up costs at most one keep-alive interval.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from app.context import GatewayContext
from app.deps import Ctx, CurrentClient, Session
from app.jobs import repository, service
from app.jobs.endpoints import AUTH_ERRORS, NOT_FOUND, own_job
from app.jobs.schemas import JobOut

router = APIRouter(prefix="/jobs", tags=["jobs"])

KEEPALIVE_SECONDS = 15.0

# Before OpenAPI 3.2's `itemSchema`, the schema of an event stream describes one event.
_EVENT_SCHEMA = {
    "type": "object",
    "description": "One event (keep-alive comments aside)",
    "properties": {
        "id": {"type": "string"},
        "event": {"type": "string", "enum": ["status", "deleted"]},
        "data": {
            "type": "string",
            "description": "JSON: for `status` the job, as `GET /jobs/{job_id}` answers it; "
            "for `deleted`, `{}`",
        },
    },
    "required": ["event", "data"],
}


@router.get(
    "/{job_id}/events",
    operation_id="stream_job_events",
    summary="Follow a job's status changes (Server-Sent Events)",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "`event: status` with the job as `data`, once per change, "
            "ending after the terminal status",
            "content": {"text/event-stream": {"schema": _EVENT_SCHEMA}},
        },
        **AUTH_ERRORS,
        **NOT_FOUND,
    },
)
async def job_events(
    job_id: str, ctx: Ctx, session: Session, client: CurrentClient
) -> StreamingResponse:
    job = await own_job(session, client, job_id)
    return StreamingResponse(
        _changes(ctx, client.id, job.id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _changes(ctx: GatewayContext, client_id: str, job_id: str) -> AsyncIterator[str]:
    last: tuple[str, str | None] | None = None
    number = 0
    while True:
        async with ctx.autocommit_sessions() as session:
            job = await repository.get_for_client(session, client_id, job_id)
        if job is None:  # deleted while followed
            yield "event: deleted\ndata: {}\n\n"
            return
        if (job.status, job.provider_status) != last:
            last = (job.status, job.provider_status)
            number += 1
            data = json.dumps(JobOut.of(job).model_dump(mode="json"), separators=(",", ":"))
            yield f"id: {number}\nevent: status\ndata: {data}\n\n"
        else:
            yield ": keep-alive\n\n"
        if service.is_terminal(job.status):
            return
        await ctx.hub.wait_for_job(job_id, KEEPALIVE_SECONDS)
